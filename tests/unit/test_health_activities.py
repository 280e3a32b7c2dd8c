"""The probe activity against real HTTP servers (the demo app), in an ActivityEnvironment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from temporalio.testing import ActivityEnvironment

from activities.health import HealthActivities
from cli.demo import DemoApp
from cli.processes import free_port
from core.models.health import HealthState, HealthTarget, InstanceRef
from tests.support import wait_for


async def _serve(app: object) -> AsyncIterator[str]:
    port = free_port()
    # The slow app's request outlives its test: cancelled at shutdown, not waited out (5 s).
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        port=port,
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=0.2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: asyncio.sleep(0, server.started), what="server started")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def healthy_url() -> AsyncIterator[str]:
    async for url in _serve(DemoApp("v1", 0, 0)):
        yield url


@pytest.fixture
async def slow_url() -> AsyncIterator[str]:
    async def slow(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        await asyncio.sleep(5)

    async for url in _serve(slow):
        yield url


def _target(*urls: str, timeout: float = 1.0) -> HealthTarget:
    return HealthTarget(
        component="web",
        path="/health",
        timeout_seconds=timeout,
        instances=[
            InstanceRef(instance_id=f"i{n}", environment="dev", version="v1", url=u)
            for n, u in enumerate(urls)
        ],
    )


async def test_probe_judges_each_instance(healthy_url: str, slow_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with httpx.AsyncClient() as http:
        acts = HealthActivities(sessions=None, http=http)  # type: ignore[arg-type]
        env = ActivityEnvironment()
        report = await env.run(
            acts.probe_component, _target(healthy_url, dead, slow_url, timeout=0.3)
        )
    assert report.state is HealthState.DEGRADED
    assert (report.healthy_instances, report.total_instances) == (1, 3)
    ok, refused, slow = report.instances
    assert ok.healthy and ok.status_code == 200
    assert not refused.healthy and "Connect" in (refused.error or "")
    assert not slow.healthy and slow.error == "no answer within 0.3s"


async def test_all_healthy_and_all_down(healthy_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with httpx.AsyncClient() as http:
        acts = HealthActivities(sessions=None, http=http)  # type: ignore[arg-type]
        env = ActivityEnvironment()
        up = await env.run(acts.probe_component, _target(healthy_url, healthy_url))
        down = await env.run(acts.probe_component, _target(dead))
    assert up.state is HealthState.HEALTHY
    assert down.state is HealthState.UNHEALTHY
