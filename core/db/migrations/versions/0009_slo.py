"""SLOs (issue 11): a component's declared SLOs, and the samples of its routers' counters.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table; PostgreSQL adds the column in place.
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slo", sa.JSON(), nullable=True))
    op.create_table(
        "slo_cursors",
        sa.Column("component_id", sa.String(length=36), nullable=False),
        sa.Column("environment", sa.String(length=63), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counters", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["component_id"], ["components.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("component_id", "environment"),
    )
    op.create_table(
        "slo_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("component_id", sa.String(length=36), nullable=False),
        sa.Column("environment", sa.String(length=63), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("latency_bucket_us", sa.Integer(), nullable=True),
        sa.Column("latency_good", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["component_id"], ["components.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("slo_samples", schema=None) as batch_op:
        batch_op.create_index("ix_slo_samples_target_at", ["component_id", "environment", "at"])


def downgrade() -> None:
    with op.batch_alter_table("slo_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_slo_samples_target_at")
    op.drop_table("slo_samples")
    op.drop_table("slo_cursors")
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.drop_column("slo")
