"""Component health states: rounds of the health-check workflow (time-skipping server, probes
faked by name) recorded by the real activity into a real store (SQLite in tmp)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.health import HealthActivities
from core import notify
from core.db import health as health_store
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.db.tables import ComponentRow, utcnow
from core.models.health import (
    ComponentHealth,
    ComponentHealthStatus,
    Condition,
    HealthCheckInput,
    HealthRecordRequest,
    HealthRound,
    HealthState,
    HealthTarget,
    InstanceHealth,
    InstanceRef,
    TargetQuery,
)
from core.settings import Settings
from tests.unit.test_health_workflow import fake_sample
from workflows.health_check import ComponentHealthCheckWorkflow

# What the fake probe answers for each component; a component missing here has no instance.
PROBED: dict[str, bool] = {}


@activity.defn(name="list-health-targets")
async def fake_targets(query: TargetQuery) -> list[HealthTarget]:
    names = [n for n in PROBED if not query.components or n in query.components]
    return [
        HealthTarget(
            component=name,
            path="/health",
            timeout_seconds=1,
            instances=[
                InstanceRef(
                    instance_id=f"{name}.dev.stable.1",
                    environment="dev",
                    version="v1",
                    url="http://x",
                )
            ],
        )
        for name in names
    ]


@activity.defn(name="probe-component")
async def fake_probe(target: HealthTarget) -> ComponentHealth:
    ok = PROBED[target.component]
    instance = target.instances[0]
    return ComponentHealth(
        component=target.component,
        state=HealthState.HEALTHY if ok else HealthState.UNHEALTHY,
        healthy_instances=int(ok),
        total_instances=1,
        instances=[
            InstanceHealth(
                **instance.model_dump(),
                healthy=ok,
                status_code=200 if ok else 503,
                error=None if ok else "HTTP 503",
            )
        ],
    )


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    settings = Settings(home=tmp_path / "home", postgres_url=None)
    await asyncio.to_thread(upgrade, settings)
    store = make_engine(settings)
    yield store
    await store.dispose()


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every event the activity emits, with the session it was emitted in."""
    calls: list[dict[str, Any]] = []

    async def emit(session: AsyncSession, event_type: str, **kw: Any) -> list[str]:
        calls.append({"type": event_type, "in_transaction": session.in_transaction(), **kw})
        return []

    monkeypatch.setattr(notify, "emit", emit)
    return calls


async def _add_components(engine: AsyncEngine, *names: str) -> dict[str, str]:
    ids = {}
    async with sessions(engine)() as session:
        for name in names:
            ids[name] = str(uuid.uuid4())
            now = utcnow()
            session.add(
                ComponentRow(
                    id=ids[name],
                    name=name,
                    runtime={"command": ["x", "{port}"]},
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.commit()
    return ids


async def _health(engine: AsyncEngine, component_id: str) -> ComponentHealthStatus:
    async with sessions(engine)() as session:
        return await health_store.status(session, component_id)


async def _round(client: Client, engine: AsyncEngine, **workflow_input: Any) -> None:
    queue = str(uuid.uuid4())
    async with httpx.AsyncClient() as http:
        acts = HealthActivities(sessions(engine), http)
        async with Worker(
            client,
            task_queue=queue,
            workflows=[ComponentHealthCheckWorkflow],
            activities=[fake_targets, fake_probe, acts.record_component_health, fake_sample],
        ):
            await client.execute_workflow(
                ComponentHealthCheckWorkflow.run,
                HealthCheckInput(**workflow_input),
                id=str(uuid.uuid4()),
                task_queue=queue,
            )


async def test_since_moves_only_on_transitions_and_each_emits_once(
    env: WorkflowEnvironment, engine: AsyncEngine, emitted: list[dict[str, Any]]
) -> None:
    ids = await _add_components(engine, "web")
    PROBED.clear()
    PROBED["web"] = True
    await _round(env.client, engine)
    first = await _health(engine, ids["web"])
    assert first.state is Condition.HEALTHY and first.reason == "1/1 instances healthy"
    assert first.since == first.checked_at

    await env.sleep(60)
    await _round(env.client, engine)
    second = await _health(engine, ids["web"])
    assert second.state is Condition.HEALTHY
    assert second.since == first.since and second.checked_at > first.checked_at

    PROBED["web"] = False
    await env.sleep(60)
    await _round(env.client, engine)
    down = await _health(engine, ids["web"])
    assert down.state is Condition.UNHEALTHY
    assert down.since == down.checked_at > second.checked_at
    assert down.reason == "0/1 instances healthy; web.dev.stable.1: HTTP 503"

    await env.sleep(60)
    await _round(env.client, engine)
    still = await _health(engine, ids["web"])
    assert still.state is Condition.UNHEALTHY and still.since == down.since

    PROBED["web"] = True
    await env.sleep(60)
    await _round(env.client, engine)
    up = await _health(engine, ids["web"])
    assert up.state is Condition.HEALTHY and up.since == up.checked_at > still.checked_at

    assert [e["type"] for e in emitted] == ["component.unhealthy", "component.recovered"]
    assert all(e["in_transaction"] for e in emitted), "emitted outside the state's transaction"
    assert len({e["event_id"] for e in emitted}) == 2
    unhealthy, recovered = emitted
    assert unhealthy["component"] == unhealthy["subject"] == "web"
    assert unhealthy["data"]["previous"] == "healthy"
    assert unhealthy["data"]["reason"] == down.reason
    assert recovered["data"]["since"] == up.since.isoformat().replace("+00:00", "Z")


async def test_a_component_without_running_instances_is_unknown(
    env: WorkflowEnvironment, engine: AsyncEngine, emitted: list[dict[str, Any]]
) -> None:
    ids = await _add_components(engine, "web", "idle")
    PROBED.clear()
    PROBED["web"] = False
    await _round(env.client, engine)
    idle = await _health(engine, ids["idle"])
    assert idle.state is Condition.UNKNOWN and idle.reason == "no running instances"
    assert [e["component"] for e in emitted] == ["web"]

    # The instances of web are retired: unknown, and no recovery is announced.
    del PROBED["web"]
    await env.sleep(60)
    await _round(env.client, engine)
    assert (await _health(engine, ids["web"])).state is Condition.UNKNOWN
    assert len(emitted) == 1


async def test_partial_rounds_touch_only_what_they_covered(
    env: WorkflowEnvironment, engine: AsyncEngine, emitted: list[dict[str, Any]]
) -> None:
    ids = await _add_components(engine, "web", "api")
    PROBED.clear()
    PROBED.update(web=True, api=True)
    await _round(env.client, engine)
    before = await _health(engine, ids["api"])

    PROBED.update(web=False, api=False)
    await env.sleep(60)
    await _round(env.client, engine, components=["web"])
    assert (await _health(engine, ids["web"])).state is Condition.UNHEALTHY
    assert await _health(engine, ids["api"]) == before

    # One environment's instances say nothing about the component as a whole.
    await env.sleep(60)
    await _round(env.client, engine, environment="dev")
    assert await _health(engine, ids["api"]) == before
    assert [e["component"] for e in emitted] == ["web"]


async def test_an_older_round_landing_late_changes_nothing(
    engine: AsyncEngine, emitted: list[dict[str, Any]]
) -> None:
    ids = await _add_components(engine, "web")
    now = datetime.now(UTC)

    def round_at(at: datetime, ok: bool) -> HealthRecordRequest:
        state = HealthState.HEALTHY if ok else HealthState.UNHEALTHY
        found = ComponentHealth(
            component="web",
            state=state,
            healthy_instances=int(ok),
            total_instances=1,
            instances=[],
        )
        return HealthRecordRequest(round=HealthRound(round=1, checked_at=at, components=[found]))

    async with httpx.AsyncClient() as http:
        acts = HealthActivities(sessions(engine), http)
        await acts.record_component_health(round_at(now, True))
        late = await acts.record_component_health(round_at(now - timedelta(seconds=30), False))
        again = await acts.record_component_health(round_at(now, True))  # a retry
    assert late.recorded == 0 and late.changes == []
    assert again.recorded == 1 and again.changes == []
    health = await _health(engine, ids["web"])
    assert health.state is Condition.HEALTHY and health.since == now
    assert emitted == []


def test_the_reason_is_bounded() -> None:
    found = ComponentHealth(
        component="web",
        state=HealthState.UNHEALTHY,
        healthy_instances=0,
        total_instances=100,
        instances=[
            InstanceHealth(
                instance_id=f"web.dev.stable.{n}",
                environment="dev",
                version="v1",
                url="http://x",
                healthy=False,
                error="ConnectError: " + "x" * 200,
            )
            for n in range(100)
        ],
    )
    state, reason = health_store.judge(found)
    assert state is Condition.UNHEALTHY
    assert len(reason) == health_store.MAX_REASON and reason.startswith("0/100 instances")


def test_the_interval_setting_is_off_or_at_least_five_seconds() -> None:
    assert Settings(health_check_every_seconds=0).health_check_every_seconds == 0
    assert Settings(health_check_every_seconds=5).health_check_every_seconds == 5
    for bad in (1, 4, -1, 86_401):
        with pytest.raises(ValueError):
            Settings(health_check_every_seconds=bad)
