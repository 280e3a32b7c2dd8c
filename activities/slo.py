"""Readings of the routers' counters for the components' SLOs, taken by the health check.

One machine needs no Prometheus for an error budget: each health round reads the admin
`/metrics` of the router of every target whose component declares SLOs, and the store keeps
the increase since the last reading (core/db/slo.py). A router that cannot be read is
reported in the result and skipped; the next round's reading covers the gap, since the
counters are cumulative.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity

from activities.analysis.router_metrics import parse
from activities.infrastructure.provider import InfrastructureProvider
from core.db import slo as slo_store
from core.db.tables import ComponentRow, InstanceRow
from core.errors import R2CError
from core.models.analysis import RouterCounters
from core.models.health import TargetQuery
from core.models.slo import SloSpec

HTTP_TIMEOUT = 5.0
MAX_PROBLEMS = 20
READ_ERRORS = (R2CError, OSError, httpx.HTTPError, ValueError)


class SloSampleResult(BaseModel):
    """What a sampling pass did: readings kept, and why some targets were not read."""

    targets: int = 0
    kept: int = Field(0, description="readings kept (the others were too soon after the last)")
    problems: list[str] = Field(default_factory=list)


class SloActivities:
    """Reads the routers of the targets whose component declares SLOs, and records them."""

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        http: httpx.AsyncClient,
        provider: InfrastructureProvider,
        min_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._http = http
        self._provider = provider
        self._min_seconds = min_seconds

    @activity.defn(name="sample-slo-counters")
    async def sample_slo_counters(self, req: TargetQuery) -> SloSampleResult:
        """Read and keep the counters of every running target of a component with SLOs."""
        targets = await self._targets(req)
        result = SloSampleResult(targets=len(targets))
        # Routers are read at once (each within HTTP_TIMEOUT), then kept one by one.
        readings = await asyncio.gather(
            *(self._read(component, env) for (_, component, env) in targets),
            return_exceptions=True,
        )
        for ((component_id, component, environment), spec), counters in zip(
            targets.items(), readings, strict=True
        ):
            if isinstance(counters, BaseException):
                if not isinstance(counters, READ_ERRORS):
                    raise counters
                if len(result.problems) < MAX_PROBLEMS:
                    result.problems.append(f"{component}/{environment}: {counters}"[:300])
                continue
            async with self._sessions() as session:
                kept = await slo_store.record_reading(
                    session,
                    component_id,
                    environment,
                    datetime.now(UTC),
                    counters,
                    spec,
                    min_seconds=self._min_seconds,
                )
                await session.commit()
            result.kept += kept
        if result.problems:
            activity.logger.warning("SLO readings missed: %s", "; ".join(result.problems))
        return result

    async def _targets(self, req: TargetQuery) -> dict[tuple[str, str, str], SloSpec]:
        query = (
            select(ComponentRow.id, ComponentRow.name, ComponentRow.slo, InstanceRow.environment)
            .join(InstanceRow, InstanceRow.component_id == ComponentRow.id)
            .where(InstanceRow.state == "running")
        )  # one row per instance, folded by the dict (no DISTINCT: PostgreSQL's json has no =)
        if req.components:
            query = query.where(ComponentRow.name.in_(req.components))
        if req.environment:
            query = query.where(InstanceRow.environment == req.environment)
        found: dict[tuple[str, str, str], SloSpec] = {}
        async with self._sessions() as session:
            for component_id, name, stored, environment in await session.execute(query):
                spec = slo_store.spec_of(stored)
                if spec is not None:
                    found[(component_id, name, environment)] = spec
        return dict(sorted(found.items()))

    async def _read(self, component: str, environment: str) -> dict[str, RouterCounters]:
        state = await self._provider.state(component, environment)
        if state.metrics_url is None:
            raise ValueError("its router has no admin port (no router, or an older one)")
        resp = await self._http.get(state.metrics_url, timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        return parse(resp.text)
