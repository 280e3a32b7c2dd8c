"""The window of the delivery insights: `30d`, `12h`, validated once, here."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

MAX_WINDOW_SECONDS = 365 * 86400
DEFAULT_WINDOW = "30d"
_WINDOW = re.compile(r"([1-9][0-9]{0,4})([hd])")


def window_seconds(text: str) -> float:
    """Seconds of a window written `<n>h` or `<n>d`, 1 hour to 365 days; ValueError else."""
    match = _WINDOW.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a window; write hours or days, e.g. 12h, 7d, 30d")
    seconds = int(match.group(1)) * (3600 if match.group(2) == "h" else 86400)
    if seconds > MAX_WINDOW_SECONDS:
        raise ValueError(f"{text!r} is longer than 365d, the longest window")
    return float(seconds)


def _window(text: str) -> str:
    window_seconds(text)
    return text.strip()


Window = Annotated[str, Field(max_length=16), AfterValidator(_window)]
"""A look-back window: `<n>h` or `<n>d`, at most 365 days."""


class Dora(BaseModel):
    """The four DORA figures of some deployments over a window (None where no data)."""

    deployments: int = Field(description="deployments created in the window")
    finished: int = Field(description="of them, the ones that ended")
    succeeded: int
    failed_changes: int = Field(description="ended rolled_back or failed")
    deployment_frequency_per_day: float = Field(description="successes per day of the window")
    lead_time_p50_seconds: float | None = Field(description="creation to success, median")
    lead_time_mean_seconds: float | None
    change_failure_rate: float | None = Field(description="failed_changes / finished")
    time_to_restore_p50_seconds: float | None = Field(
        description="end of the first failed change of a run to the next success, median"
    )
    time_to_restore_mean_seconds: float | None
    restores: int = Field(description="failure runs that a success ended")
