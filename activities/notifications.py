# ruff: noqa: ARG001  (a stub until its work lands: remove this line then)
"""Activities that deliver notifications (issue 10: notifications). Filled in by that work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from core.settings import Settings


def notification_activities(
    sessions: async_sessionmaker[Any], http: httpx.AsyncClient, client: Client, settings: Settings
) -> list[Callable[..., Any]]:
    """The activities the worker registers for notifications."""
    return []
