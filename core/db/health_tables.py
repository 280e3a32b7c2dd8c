"""The store's component health table (migration 0006): the state the health rounds leave."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime


class ComponentHealthRow(Base):
    """One row per component: its state, since when, and what the last round saw. Keyed by
    the component's id, so a component deleted and registered again starts afresh."""

    __tablename__ = "component_health"

    component_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("components.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
