"""The audit chain's checkpoints (migration 0010): where the chain goes on after pruning."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime


class AuditCheckpointRow(Base):
    """The signed head of the events pruned up to `through_id`; verification starts here."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (UniqueConstraint("through_id", name="uq_audit_checkpoints_through_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    through_id: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    pruned: Mapped[int] = mapped_column(Integer)  # how many events this pruning removed
    at: Mapped[datetime] = mapped_column(UTCDateTime)
