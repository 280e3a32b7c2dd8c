"""The store's tables of events in (migration 0007): events received, routes, webhook
sources. No signature or secret is ever here: a source keeps only its Vault path and
version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime


class EventRow(Base):
    """One event received. `(source, event_id)` is unique: that is what makes a repeated
    delivery a replay that acts once, whatever the number of concurrent copies."""

    __tablename__ = "events"

    # 64 bits: ids keep growing as old events are dropped. SQLite's INTEGER is 64 bits, and
    # only INTEGER makes its primary key the auto-incremented row id.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(512))
    type: Mapped[str] = mapped_column(String(256))
    subject: Mapped[str | None] = mapped_column(String(512), nullable=True)
    time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    via: Mapped[str] = mapped_column(String(80))
    received_by: Mapped[str] = mapped_column(String(120))
    datacontenttype: Mapped[str | None] = mapped_column(String(128), nullable=True)
    extensions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    data_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    matched: Mapped[list[str]] = mapped_column(JSON, default=list)
    outcomes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    __table_args__ = (
        # Ids and sources are printable ASCII (core/models/events.py): 768 bytes at most,
        # well within PostgreSQL's limit for one index entry.
        UniqueConstraint("source", "event_id", name="uq_events_source_id"),
        Index("ix_events_received_at", "received_at"),
        Index("ix_events_type", "type"),
    )


class EventRouteRow(Base):
    """A route; `spec` is an `EventRouteSpec`, `role` the role of its last writer."""

    __tablename__ = "event_routes"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    role: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookSourceRow(Base):
    """A sender of signed webhooks; its secret is version `secret_version` at `vault_path`."""

    __tablename__ = "webhook_sources"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    event_type: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    vault_path: Mapped[str] = mapped_column(String(200))
    secret_version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
