# ruff: noqa: ARG001  (a stub until its work lands: remove this line then)
"""Activities of scheduled workflows (issue 10: schedules). Filled in by the schedules work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from core.settings import Settings


def schedule_activities(
    sessions: async_sessionmaker[Any], client: Client, settings: Settings
) -> list[Callable[..., Any]]:
    """The activities the worker registers for schedules."""
    return []
