"""The store's configuration tables (migration 0004). Secret values are never here: a secret
version keeps only where its value lives in Vault."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime

# An absent component or environment is stored as "" rather than NULL: unique constraints
# treat NULLs as distinct on both backends, and one entry per (key, scope) is the point.
NO_NAME = ""


class ConfigEntryRow(Base):
    """A key at one scope; its values are its versions."""

    __tablename__ = "config_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(128))
    component: Mapped[str] = mapped_column(String(63))
    environment: Mapped[str] = mapped_column(String(62))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("key", "component", "environment", name="uq_config_entries_scope"),
        Index("ix_config_entries_target", "component", "environment"),
    )


class ConfigVersionRow(Base):
    """One change of an entry. `(entry_id, version)` is unique, so of two writers that saw the
    same version exactly one commits; `revision` orders every change of every entry."""

    __tablename__ = "config_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("config_entries.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, unique=True)
    action: Mapped[str] = mapped_column(String(16))
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    secret: Mapped[bool] = mapped_column(Boolean, default=False)
    vault_path: Mapped[str | None] = mapped_column(String(400), nullable=True)
    vault_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("entry_id", "version", name="uq_config_versions_entry_version"),
    )


class ConfigRevisionRow(Base):
    """The one counter of configuration revisions. Every change increments it first, which
    also makes configuration changes take turns (a row lock on PostgreSQL, the write lock on
    SQLite), so checks made after it are not made stale by a concurrent writer."""

    __tablename__ = "config_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)
