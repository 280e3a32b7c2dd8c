"""What the worker runs: every workflow, and the activities bound to their dependencies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker

from activities.health import HealthActivities
from workflows.health_check import ComponentHealthCheckWorkflow

WORKFLOWS: Sequence[type] = (ComponentHealthCheckWorkflow,)


def activities(
    sessions: async_sessionmaker[Any], http: httpx.AsyncClient
) -> list[Callable[..., Any]]:
    health = HealthActivities(sessions, http)
    return [health.list_health_targets, health.probe_component]
