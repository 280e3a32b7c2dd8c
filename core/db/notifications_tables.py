"""The store's notification tables (migration 0008): subscriptions, the outbox of messages to
deliver (one row per event and subscription) and the attempts made. Signing secrets are never
here: a subscription keeps only where its secret lives in Vault."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime


class SubscriptionRow(Base):
    """Where events go; `next_sequence` numbers its messages, so they leave in order."""

    __tablename__ = "notification_subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    components: Mapped[list[str]] = mapped_column(JSON)
    environments: Mapped[list[str]] = mapped_column(JSON)
    format: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(Boolean)
    secret_path: Mapped[str | None] = mapped_column(String(200), nullable=True)
    next_sequence: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxRow(Base):
    """One event for one subscription. `id` is the message's webhook-id (the same on every
    attempt); `(subscription_id, event_id)` is unique, so a retried producer queues it once."""

    __tablename__ = "notification_outbox"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(40))
    sequence: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_notification_outbox_event"),
        UniqueConstraint("subscription_id", "sequence", name="uq_notification_outbox_sequence"),
        Index("ix_notification_outbox_pending", "subscription_id", "status", "sequence"),
    )


class AttemptRow(Base):
    """One POST of a message and its answer (bounded excerpt)."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(String(40))
    outbox_id: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(String(500), nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_notification_attempts_subscription", "subscription_id", "id"),)
