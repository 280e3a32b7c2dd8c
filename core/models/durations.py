"""Durations as users write them: "30s", "5m", "1h30m", "250ms", or a number of seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

# Every duration a user writes is at most 30 days: far beyond any sane pause or analysis, and
# far below what overflows Python's `timedelta` (a workflow that overflowed would be wedged).
MAX_DURATION_SECONDS = 30 * 86400

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """Seconds from "1h30m"-style text; numbers pass through (pydantic checks the rest)."""
    if not isinstance(value, str):
        return value
    text = value.strip().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if not text or len(text) > 64 or _PART.sub("", text):
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h30m or 250ms")
    return sum(float(n) * _SECONDS[unit] for n, unit in _PART.findall(text))


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(ge=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False),
]
"""A duration in seconds, 0 to 30 days (`MAX_DURATION_SECONDS`), written as text or a number."""
