"""The store's ui_sessions table (migration 0017): the dashboard's server-side sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime


class UiSessionRow(Base):
    """One browser session, by the SHA-256 of its cookie value (the value itself is never
    stored: a copy of the table signs nobody in)."""

    __tablename__ = "ui_sessions"
    __table_args__ = (Index("ix_ui_sessions_expires_at", "expires_at"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
