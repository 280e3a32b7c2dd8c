"""Cron and calendar fields as users write them, checked before Temporal sees them.

Temporal refuses a bad cron string only when the schedule is created (a 400 from the server,
or worse, a schedule that never fires); checking here turns it into a 422 that names the field.
The syntax is the classic one: `*`, `5`, `1-5`, `*/15`, `10-50/10` and lists of those joined
by commas; five cron fields (minute hour day-of-month month day-of-week, Sunday = 0) or one of
the `@hourly`-style macros.
"""

from __future__ import annotations

import re

from temporalio.client import ScheduleRange

# Field name -> (lowest, highest) value it takes.
BOUNDS: dict[str, tuple[int, int]] = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day_of_month": (1, 31),
    "month": (1, 12),
    "day_of_week": (0, 6),
}
CRON_FIELDS = ("minute", "hour", "day_of_month", "month", "day_of_week")
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_FIELD_LENGTH = 100
_ITEM = re.compile(r"^(\*|\d{1,2}(?:-\d{1,2})?)(?:/(\d{1,2}))?$")


def parse_field(name: str, text: str) -> list[ScheduleRange]:
    """The ranges `text` means for field `name`; ValueError says what is wrong."""
    low, high = BOUNDS[name]
    if not text or len(text) > MAX_FIELD_LENGTH:
        raise ValueError(
            f"{name}: write a value such as *, 5, 1-5 or */15 (at most {MAX_FIELD_LENGTH} "
            "characters)"
        )
    items = text.split(",")  # at most 50: the length bounds them
    ranges = []
    for item in items:
        found = _ITEM.match(item.strip())
        if found is None:
            raise ValueError(
                f"{name}: {item!r} is not *, a number, a range a-b, or one of those with /step"
            )
        base, step_text = found.group(1), found.group(2)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            start, end = (int(v) for v in base.split("-"))
        else:
            start = int(base)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or end < start:
            raise ValueError(f"{name}: {item!r} is outside {low}-{high} or runs backwards")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"{name}: a step is at least 1")
        ranges.append(ScheduleRange(start, end, step))
    return ranges


def check_cron(expression: str) -> str:
    """`expression` unchanged when it is a valid five-field cron string or macro."""
    text = expression.strip()
    fields = CRON_MACROS.get(text, text).split()
    if len(fields) != len(CRON_FIELDS):
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; a cron expression has five (minute hour "
            "day-of-month month day-of-week) or is one of " + ", ".join(sorted(CRON_MACROS))
        )
    for name, value in zip(CRON_FIELDS, fields, strict=True):
        parse_field(name, value)
    return text
