"""configuration entries and their versions

Entries (a key at a scope), their versions (values, or for secrets only where Vault keeps
them), the one revision counter of every configuration change, and the components' JSON
Schema for their configuration.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("component", sa.String(length=63), nullable=False),
        sa.Column("environment", sa.String(length=62), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", "component", "environment", name="uq_config_entries_scope"),
    )
    op.create_index(
        "ix_config_entries_target", "config_entries", ["component", "environment"], unique=False
    )
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("secret", sa.Boolean(), nullable=False),
        sa.Column("vault_path", sa.String(length=400), nullable=True),
        sa.Column("vault_version", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["config_entries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entry_id", "version", name="uq_config_versions_entry_version"),
        sa.UniqueConstraint("revision", name="uq_config_versions_revision"),
    )
    revision_table = op.create_table(
        "config_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(revision_table, [{"id": 1, "value": 0}])
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.add_column(sa.Column("config_schema", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.drop_column("config_schema")
    op.drop_table("config_revision")
    op.drop_table("config_versions")
    op.drop_index("ix_config_entries_target", table_name="config_entries")
    op.drop_table("config_entries")
