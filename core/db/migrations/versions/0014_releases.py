"""Releases (issue 13): several components deployed in dependency order.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("environment", sa.String(length=63), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("failed_component", sa.String(length=63), nullable=True),
        sa.Column("status", sa.JSON(), nullable=True),
        sa.Column("initiator", sa.String(length=300), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.create_index("ix_releases_environment", ["environment"])
        batch_op.create_index("ix_releases_state", ["state"])
        batch_op.create_index("ix_releases_created_at", ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_index("ix_releases_created_at")
        batch_op.drop_index("ix_releases_state")
        batch_op.drop_index("ix_releases_environment")
    op.drop_table("releases")
