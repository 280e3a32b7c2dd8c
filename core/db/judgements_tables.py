"""The store's judgements table (migration 0018): what each judge metric of an analysis decided,
and the data it decided on, so it can be judged again (replay) or serve as a pinned baseline.

The columns a query filters or sorts on are plain columns; the judgement itself is JSON, and
the recording (up to 10,000 samples a side per source) is zlib-compressed JSON. No foreign key
to `deployments`: a judgement is an observation saved by an activity, and the table is bounded
per (component, environment) by the store, not by the deployments' lifetime.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime


class JudgementRow(Base):
    """One judge metric's judgement of one deployment, at one place of its analysis."""

    __tablename__ = "judgements"
    __table_args__ = (
        # The upsert's key: a later measurement of the same metric replaces the earlier one.
        UniqueConstraint("deployment_id", "where", "metric", name="uq_judgements_key"),
        # The pinned baseline (newest pass of a target) and the bound per target (its oldest).
        Index("ix_judgements_target_at", "component", "environment", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(String(64))
    component: Mapped[str] = mapped_column(String(63))
    environment: Mapped[str] = mapped_column(String(63))
    version: Mapped[str] = mapped_column(String(128))
    where: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    verdict: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    recording: Mapped[bytes] = mapped_column(LargeBinary)
