"""The store's line_stops table (migration 0015): the stop-the-line switches in force."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime


class LineStopRow(Base):
    """One stop in force; clearing the stop deletes the row (the audit chain keeps history)."""

    __tablename__ = "line_stops"

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(300))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
