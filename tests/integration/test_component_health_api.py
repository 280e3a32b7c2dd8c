"""Component health end to end on the real Temporal dev server: the default schedule's runs
probe a real demo process, and the API and /metrics show the state it leaves."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from temporalio.service import RPCError

from api.metrics import watch_component_health
from cli.processes import free_port
from core.db.engine import make_engine, sessions
from core.db.tables import InstanceRow, utcnow
from core.default_schedules import HEALTH_CHECK_SCHEDULE_ID, ensure_default_schedules
from tests.integration.system import System
from tests.support import wait_for, wait_for_sync


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    url: str


@pytest.fixture
def demo() -> Iterator[Demo]:
    """A real `r2c demo serve` process and its URL; killed at the end."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "demo", "serve", "--port", str(port), "--version", "v1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None

    wait_for_sync(answers, what="demo server")
    assert proc.poll() is None, "demo server exited"
    yield Demo(proc, f"http://127.0.0.1:{port}")
    proc.kill()
    proc.wait(10)


async def _register(system: System, name: str, url: str | None) -> str:
    """A component whose one instance (at `url`, if any) the store says is running; returns
    its id."""
    spec = {
        "name": name,
        "runtime": {
            "command": ["r2c", "demo", "serve", "--port", "{port}"],
            "health_check": {"timeout_seconds": 1},
        },
    }
    resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
    assert resp.status_code == 201, resp.text
    assert resp.json()["health"]["state"] == "unknown"
    component_id: str = resp.json()["id"]
    if url is None:
        return component_id
    engine = make_engine(system.settings)
    async with sessions(engine)() as session:
        now = utcnow()
        session.add(
            InstanceRow(
                id=f"{name}.dev.stable.1",
                component_id=component_id,
                environment="dev",
                version="v1",
                slot="stable",
                url=url,
                state="running",
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()
    await engine.dispose()
    return component_id


@pytest.fixture
async def scheduled(make_system: Callable[..., Any]) -> Any:
    """A system whose worker gets the default schedule every 5 s; deleted at the end."""
    system: System = await make_system(health_check_every_seconds=5)
    await ensure_default_schedules(system.temporal, system.settings)
    yield system
    try:
        await system.temporal.get_schedule_handle(HEALTH_CHECK_SCHEDULE_ID).delete()
    except RPCError:
        pass


@pytest.fixture
def gauges(scheduled: System) -> Iterator[CollectorRegistry]:
    """A registry serving the component health gauges, as the API's metrics port does."""
    registry = CollectorRegistry()
    collector = watch_component_health(scheduled.settings, registry)
    yield registry
    collector.close()


async def test_scheduled_runs_show_health_and_its_changes(
    scheduled: System, demo: Demo, gauges: CollectorRegistry
) -> None:
    system, registry = scheduled, gauges
    web = await _register(system, "web", demo.url)
    await _register(system, "idle", None)

    async def health(ref: str) -> dict[str, Any]:
        resp = await system.http.get(f"/api/v1/components/{ref}", headers=system.auth())
        assert resp.status_code == 200, resp.text
        value: dict[str, Any] = resp.json()["health"]
        return value

    healthy = await wait_for(
        lambda: health(web), lambda h: h["state"] == "healthy", within=30, what="web healthy"
    )
    assert healthy["reason"] == "1/1 instances healthy"
    assert healthy["since"] is not None and healthy["checked_at"] >= healthy["since"]
    assert registry.get_sample_value("r2c_component_healthy", {"component": "web"}) == 1.0
    idle = await health("idle")
    assert (idle["state"], idle["reason"]) == ("unknown", "no running instances")
    assert registry.get_sample_value("r2c_component_healthy", {"component": "idle"}) is None
    # The run that did it was the schedule's, with its initiator.
    runs = [
        w
        async for w in system.temporal.list_workflows(
            f"TaskQueue = '{system.settings.task_queue}'"
            " AND Initiator = 'schedule:system-health-check'"
        )
    ]
    assert runs and all(r.id.startswith(HEALTH_CHECK_SCHEDULE_ID) for r in runs)

    # The next round keeps `since` and moves `checked_at`.
    later = await wait_for(
        lambda: health(web),
        lambda h: h["checked_at"] > healthy["checked_at"],
        within=30,
        what="another round",
    )
    assert later["state"] == "healthy" and later["since"] == healthy["since"]

    demo.proc.kill()
    demo.proc.wait(10)
    down = await wait_for(
        lambda: health("web"), lambda h: h["state"] == "unhealthy", within=30, what="unhealthy"
    )
    assert down["since"] > healthy["since"]
    assert down["reason"].startswith("0/1 instances healthy; web.dev.stable.1: ")
    assert registry.get_sample_value("r2c_component_healthy", {"component": "web"}) == 0.0
    checked = registry.get_sample_value(
        "r2c_component_health_checked_timestamp_seconds", {"component": "web"}
    )
    assert checked is not None and checked > 0

    # The list shows every component's health too.
    resp = await system.http.get("/api/v1/components", headers=system.auth())
    states = {c["name"]: c["health"]["state"] for c in resp.json()}
    assert states["web"] == "unhealthy"
