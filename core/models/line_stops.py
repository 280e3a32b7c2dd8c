"""Stop the line: a switch that halts every promotion and scheduled deployment at once.

A stop has a scope: `global` (everything) or `pipeline:<name>` (one promotion pipeline). While a
stop is set, automation refuses to move anything it covers and says why and who set it; people
can still deploy by hand (a hotfix must not wait for the switch).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

GLOBAL_SCOPE = "global"
MAX_REASON = 500


def pipeline_scope(pipeline: str) -> str:
    return f"pipeline:{pipeline}"


class LineStopRequest(BaseModel):
    """What a client sends to stop the line."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(..., min_length=1, max_length=MAX_REASON)


class LineStop(BaseModel):
    """A stop in force: its scope, why, who set it and when."""

    scope: str
    reason: str
    set_by: str
    set_at: datetime
