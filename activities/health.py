"""Health probes: read which instances run from the store, then GET their health endpoints."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity
from temporalio.client import Client

from core import notify
from core.db import health as health_store
from core.db.tables import ComponentRow, InstanceRow
from core.models.components import RuntimeSpec
from core.models.health import (
    ComponentHealth,
    Condition,
    HealthChange,
    HealthRecordRequest,
    HealthRecordResult,
    HealthState,
    HealthTarget,
    InstanceHealth,
    InstanceRef,
    TargetQuery,
)


class HealthActivities:
    """Activities of the health check; they hold the store's sessions, one HTTP client, and
    the Temporal client that wakes notification deliveries (none: nobody is woken)."""

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        http: httpx.AsyncClient,
        client: Client | None = None,
    ) -> None:
        self._sessions = sessions
        self._http = http
        self._client = client

    @activity.defn(name="list-health-targets")
    async def list_health_targets(self, req: TargetQuery) -> list[HealthTarget]:
        """Every requested component that has running instances, with its probe settings."""
        query = (
            select(ComponentRow, InstanceRow)
            .join(InstanceRow, InstanceRow.component_id == ComponentRow.id)
            .where(InstanceRow.state == "running")
            .order_by(ComponentRow.name, InstanceRow.id)
        )
        if req.components:
            query = query.where(ComponentRow.name.in_(req.components))
        if req.environment:
            query = query.where(InstanceRow.environment == req.environment)
        targets: dict[str, HealthTarget] = {}
        async with self._sessions() as session:
            for component, instance in await session.execute(query):
                if component.name not in targets:
                    check = RuntimeSpec.model_validate(component.runtime).health_check
                    targets[component.name] = HealthTarget(
                        component=component.name,
                        path=check.path,
                        timeout_seconds=check.timeout_seconds,
                        instances=[],
                    )
                targets[component.name].instances.append(
                    InstanceRef(
                        instance_id=instance.id,
                        environment=instance.environment,
                        version=instance.version,
                        url=instance.url,
                    )
                )
        return list(targets.values())

    @activity.defn(name="probe-component")
    async def probe_component(self, target: HealthTarget) -> ComponentHealth:
        """GET the health path of every instance at once; a slow or failing one is unhealthy."""
        results = await asyncio.gather(*(self._probe(target, i) for i in target.instances))
        healthy = sum(r.healthy for r in results)
        if healthy == len(results):
            state = HealthState.HEALTHY
        elif healthy == 0:
            state = HealthState.UNHEALTHY
        else:
            state = HealthState.DEGRADED
        return ComponentHealth(
            component=target.component,
            state=state,
            healthy_instances=healthy,
            total_instances=len(results),
            instances=list(results),
        )

    async def _probe(self, target: HealthTarget, instance: InstanceRef) -> InstanceHealth:
        url = instance.url.rstrip("/") + target.path
        started = time.perf_counter()
        base = instance.model_dump()
        try:
            resp = await self._http.get(url, timeout=target.timeout_seconds)
        except httpx.TimeoutException:
            return InstanceHealth(
                **base, healthy=False, error=f"no answer within {target.timeout_seconds}s"
            )
        except httpx.HTTPError as err:
            return InstanceHealth(**base, healthy=False, error=f"{type(err).__name__}: {err}")
        latency = round((time.perf_counter() - started) * 1000, 2)
        ok = 200 <= resp.status_code < 300
        return InstanceHealth(
            **base,
            healthy=ok,
            status_code=resp.status_code,
            latency_ms=latency,
            error=None if ok else f"HTTP {resp.status_code}",
        )

    @activity.defn(name="record-component-health")
    async def record_component_health(self, req: HealthRecordRequest) -> HealthRecordResult:
        """Turn a round into per-component states. A component that becomes unhealthy, or
        healthy again after being unhealthy, emits its event in the same transaction; a retry
        finds the state already there and emits nothing twice."""
        async with self._sessions() as session:
            result = await health_store.record_round(session, req)
            woken: list[str] = []
            for change in result.changes:
                event_type = transition_event(change)
                if event_type is not None:
                    woken += await notify.emit(
                        session,
                        event_type,
                        event_id=f"{event_type}:{change.component}:{change.since.isoformat()}",
                        subject=change.component,
                        data=change.model_dump(mode="json"),
                        component=change.component,
                    )
            await session.commit()
        if woken and self._client is not None:
            await notify.wake(self._client, sorted(set(woken)))
        return result


def transition_event(change: HealthChange) -> str | None:
    """The notification a change of state is worth: entering `unhealthy` from anything else,
    or `healthy` straight after `unhealthy`. Components coming and going (unknown) are not."""
    if change.state is Condition.UNHEALTHY:
        return "component.unhealthy"
    if change.state is Condition.HEALTHY and change.previous is Condition.UNHEALTHY:
        return "component.recovered"
    return None
