"""Delivery insights: the DORA figures of each target and of all of them, from the store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import components
from core.db import insights as store
from core.insights import by_target, dora
from core.models.insights import Dora, window_seconds


class TargetInsights(Dora):
    """The figures of one (component, environment)."""

    component: str
    environment: str


class Insights(BaseModel):
    """`GET /api/v1/insights`: per target and overall, over one window."""

    window: str
    since: datetime
    until: datetime
    truncated: bool = Field(
        description=f"true when the window held more than {store.MAX_ROWS} deployments: the"
        " figures are of the newest of them"
    )
    overall: Dora
    targets: list[TargetInsights]


async def insights(
    session: AsyncSession,
    *,
    window: str,
    component: str | None,
    environment: str | None,
    now: datetime | None = None,
    readable: Callable[[str, str], bool] | None = None,
) -> Insights:
    """The figures over `window` (already validated), filtered; NotFoundError for a
    component that is not registered."""
    name = None
    if component is not None:
        name = (await components.get_row(session, component)).name
    seconds = window_seconds(window)
    until = now or datetime.now(UTC)
    since = until - timedelta(seconds=seconds)
    facts = await store.facts(session, since, component=name, environment=environment)
    if readable is not None:  # a scoped caller: the figures of what it may read, only
        facts = [f for f in facts if readable(f.component, f.environment)]
    targets = [
        TargetInsights(component=c, environment=e, **d.model_dump())
        for (c, e), d in by_target(facts, seconds).items()
    ]
    return Insights(
        window=window,
        since=since,
        until=until,
        truncated=len(facts) >= store.MAX_ROWS,
        overall=dora(facts, seconds),
        targets=targets,
    )
