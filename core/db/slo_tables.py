"""The store's SLO tables (migration 0009): where the routers' counters were last read, and
what each reading added since the one before.

Samples hold increases, not cumulative counters, so a window's figures are SQL sums and a
router restart (counters back to zero) is handled once, when the reading is taken.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime


class SloCursorRow(Base):
    """The last reading of a target's router: cumulative counters by version."""

    __tablename__ = "slo_cursors"

    component_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("components.id", ondelete="CASCADE"), primary_key=True
    )
    environment: Mapped[str] = mapped_column(String(63), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    counters: Mapped[dict[str, Any]] = mapped_column(JSON)


class SloSampleRow(Base):
    """What the router of a target answered between two readings, all versions together.

    `latency_bucket_us` is the router bucket (microseconds) the component's latency SLO was
    judged at when the reading was taken, and `latency_good` the requests answered within
    it; a changed threshold starts the latency figures afresh (they sum that bucket only).
    """

    __tablename__ = "slo_samples"
    __table_args__ = (Index("ix_slo_samples_target_at", "component_id", "environment", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    component_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("components.id", ondelete="CASCADE")
    )
    environment: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    requests: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    latency_bucket_us: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_good: Mapped[int] = mapped_column(Integer, default=0)
