"""The store's pipeline tables (migration 0016): definitions, runs, verified combinations,
holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime


class PipelineRow(Base):
    """A pipeline's definition (`spec`: its stages, as given)."""

    __tablename__ = "pipelines"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PipelineRunRow(Base):
    """One run: the combination it promotes, where its workflow runs, its last status."""

    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(63), index=True)
    components: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    initiator: Mapped[str] = mapped_column(String(300))
    workflow_id: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PipelineVerificationRow(Base):
    """A combination verified in an environment of a pipeline (history: the newest is the
    environment's current one)."""

    __tablename__ = "pipeline_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(63), index=True)
    environment: Mapped[str] = mapped_column(String(63))
    combination: Mapped[str] = mapped_column(String(64), index=True)
    components: Mapped[dict[str, Any]] = mapped_column(JSON)
    run_id: Mapped[str] = mapped_column(String(40))
    rollback: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PipelineHoldRow(Base):
    """Auto-promotion into (pipeline, environment) is held until an operator releases it
    (`released_at`: a change by hand before it is not held on again)."""

    __tablename__ = "pipeline_holds"

    pipeline: Mapped[str] = mapped_column(String(63), primary_key=True)
    environment: Mapped[str] = mapped_column(String(63), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(300))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
