"""`component-health-check` against real demo processes: healthy, degraded, and unhealthy."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cli.processes import free_port
from core.db.engine import make_engine, sessions
from core.db.tables import InstanceRow, utcnow
from tests.integration.system import System
from tests.support import wait_for_sync


@pytest.fixture
def demo_server() -> Iterator[str]:
    """A real `r2c demo serve` process; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "demo", "serve", "--port", str(port), "--version", "v1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None  # stop waiting if it died; asserted below

    wait_for_sync(answers, what="demo server")
    assert proc.poll() is None, "demo server exited"
    yield url
    proc.terminate()
    proc.wait(10)


async def _register(system: System, name: str, urls: list[str]) -> None:
    spec = {
        "name": name,
        "runtime": {
            "command": ["r2c", "demo", "serve", "--port", "{port}"],
            "health_check": {"timeout_seconds": 1},
        },
    }
    resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
    assert resp.status_code == 201, resp.text
    engine = make_engine(system.settings)
    async with sessions(engine)() as session:
        for i, url in enumerate(urls):
            now = utcnow()
            session.add(
                InstanceRow(
                    id=f"{name}-{i}",
                    component_id=resp.json()["id"],
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


async def _run_check(system: System, **workflow_input: Any) -> dict[str, Any]:
    resp = await system.start(input=workflow_input)
    assert resp.status_code == 202, resp.text
    done = await system.until_status(resp.json()["id"], "completed", "failed")
    assert done["status"] == "completed", done
    result: dict[str, Any] = done["result"]
    return result


async def test_reports_each_component_state(system: System, demo_server: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    await _register(system, "web", [demo_server, demo_server])
    await _register(system, "half", [demo_server, dead])
    await _register(system, "gone", [dead])
    # A component without running instances is not probed at all.
    await system.http.post(
        "/api/v1/components",
        json={"name": "idle", "runtime": {"command": ["srv", "{port}"]}},
        headers=system.auth(),
    )
    report = await _run_check(system)
    states = {c["component"]: c["state"] for c in report["last"]["components"]}
    assert states == {"web": "healthy", "half": "degraded", "gone": "unhealthy"}
    half = next(c for c in report["last"]["components"] if c["component"] == "half")
    assert (half["healthy_instances"], half["total_instances"]) == (1, 2)
    failing = next(i for i in half["instances"] if not i["healthy"])
    assert "Connect" in failing["error"]
    ok = next(i for i in half["instances"] if i["healthy"])
    assert ok["status_code"] == 200 and ok["latency_ms"] is not None
    assert report["unhealthy_rounds"] == 1


async def test_filters_by_component(system: System, demo_server: str) -> None:
    await _register(system, "web", [demo_server])
    await _register(system, "api", [demo_server])
    report = await _run_check(system, components=["api"])
    assert [c["component"] for c in report["last"]["components"]] == ["api"]


async def test_watch_runs_several_rounds(system: System, demo_server: str) -> None:
    await _register(system, "web", [demo_server])
    report = await _run_check(system, rounds=2, interval_seconds=1)
    assert report["rounds_completed"] == 2
    assert report["last"]["round"] == 2
    assert report["unhealthy_rounds"] == 0


async def test_startable_like_the_temporal_ui_does(system: System) -> None:
    """The Web UI starts a workflow by type name with no input, or with raw JSON."""
    client = system.temporal
    queue = system.settings.task_queue
    bare = await client.start_workflow("component-health-check", id="ui-bare", task_queue=queue)
    raw_json = await client.start_workflow(
        "component-health-check", {"rounds": 1}, id="ui-json", task_queue=queue
    )
    for handle in (bare, raw_json):
        result = await handle.result()
        assert result["rounds_completed"] == 1
