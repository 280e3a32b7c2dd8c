"""Workflows that schedules start (issue 10: schedules). Filled in by the schedules work."""

from __future__ import annotations

from collections.abc import Sequence

SCHEDULE_WORKFLOWS: Sequence[type] = ()
