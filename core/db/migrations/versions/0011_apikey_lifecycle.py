"""API key lifecycle (issue 12): expiry, last use, rotation.

Keys already in the store get no expiry (NULL expires_at) and have never been rotated.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_COLUMNS = ("expires_at", "last_used_at", "rotated_at", "grace_until")


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table; PostgreSQL alters it in place.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        for name in _COLUMNS:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("replaced_by", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("replaced_by")
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
