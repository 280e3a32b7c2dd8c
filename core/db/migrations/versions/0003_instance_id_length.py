"""instance ids sized for the longest names

Instance ids are `<component>.<environment>.<slot>.<n>` (core/ids.py): with names of 63, 62
and 31 characters they reach about 170 characters, which VARCHAR(100) refused on PostgreSQL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.alter_column(
            "id",
            existing_type=sa.String(length=100),
            type_=sa.String(length=200),
            existing_nullable=False,
        )


def downgrade() -> None:
    # The table mirrors what runs and is rewritten on the next look at each target: rows whose
    # id no longer fits are dropped rather than failing the downgrade.
    op.execute(sa.text("DELETE FROM instances WHERE length(id) > 100"))
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.alter_column(
            "id",
            existing_type=sa.String(length=200),
            type_=sa.String(length=100),
            existing_nullable=False,
        )
