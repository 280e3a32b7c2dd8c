"""Deployments and retires of one component exclude each other, whatever the interleaving.

Each test starts the other request exactly between one request's check and its act (by
wrapping the check), and holds it there until the other request is waiting for the component
lock; the outcome is then fixed: one of the two answers 409, and no deployment loses its
instances to a retire or outlives its component. The worker runs the real workflows on the
no-op provider (nothing is started), so the only thing under test is the API's exclusion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from api.services import exclusion
from core.db import components as component_store
from tests.integration.system import System
from tests.integration.test_components_api import DEMO
from tests.noop_provider import NoopProvider
from tests.support import wait_for

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

DEPLOY = {"component": "demo", "environment": "dev", "version": "v1"}


@pytest.fixture
async def noop(make_system: Callable[..., Any]) -> System:
    system: System = await make_system(noop=True)
    created = await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    assert created.status_code == 201, created.text
    return system


def _waits_for_the_lock(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """An event set as soon as a second caller asks for a component's lock."""
    asked = asyncio.Event()
    calls = 0
    real = component_store.lock

    async def lock(session: Any, ref: str) -> Any:
        nonlocal calls
        calls += 1
        if calls >= 2:
            asked.set()
        return await real(session, ref)

    monkeypatch.setattr(component_store, "lock", lock)
    return asked


def _between_check_and_act(
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    name: str,
    other: Callable[[], Awaitable[httpx.Response]],
    other_waits: asyncio.Event,
) -> list[asyncio.Task[httpx.Response]]:
    """Wrap the check `module.name`: once it passed, start `other` and let the first request
    act only when `other` waits for the lock (or has answered, as it would without one)."""
    real = getattr(module, name)
    started: list[asyncio.Task[httpx.Response]] = []

    async def check(*args: Any, **kwargs: Any) -> None:
        await real(*args, **kwargs)
        if started:
            return
        started.append(asyncio.create_task(other()))
        waiting = asyncio.create_task(other_waits.wait())
        await asyncio.wait({started[0], waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()

    monkeypatch.setattr(module, name, check)
    return started


async def test_a_deployment_started_during_a_delete_is_refused(
    noop: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The retire holds until the deployment has its answer: it runs while the deployment
    # checks, as a slow retire of real instances would.
    release = asyncio.Event()
    real_retire = NoopProvider.retire

    async def slow_retire(
        self: NoopProvider, component: str, environment: str | None = None
    ) -> None:
        await release.wait()
        await real_retire(self, component, environment)

    monkeypatch.setattr(NoopProvider, "retire", slow_retire)
    asked = _waits_for_the_lock(monkeypatch)
    deploy = _between_check_and_act(
        monkeypatch,
        exclusion,
        "refuse_while_deploying",
        lambda: noop.http.post("/api/v1/deployments", json=DEPLOY, headers=noop.auth()),
        asked,
    )
    delete = asyncio.create_task(noop.http.delete("/api/v1/components/demo", headers=noop.auth()))
    await wait_for(lambda: _started(deploy), what="the deployment request to be sent")
    deployed = await deploy[0]
    release.set()
    deleted = await delete
    assert deployed.status_code == 409, deployed.text
    assert "being retired" in deployed.json()["error"]["message"]
    assert deleted.status_code == 204, deleted.text
    listed = await noop.http.get("/api/v1/deployments?component=demo", headers=noop.auth())
    assert listed.json()["items"] == []


async def test_a_delete_during_a_deployment_start_is_refused(
    noop: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _waits_for_the_lock(monkeypatch)
    delete = _between_check_and_act(
        monkeypatch,
        exclusion,
        "refuse_while_retiring",
        lambda: noop.http.delete("/api/v1/components/demo", headers=noop.auth()),
        asked,
    )
    deployed = await noop.http.post("/api/v1/deployments", json=DEPLOY, headers=noop.auth())
    deleted = await delete[0]
    assert deployed.status_code == 202, deployed.text
    assert deleted.status_code == 409, deleted.text
    assert deployed.json()["id"] in deleted.json()["error"]["message"]
    done = await wait_for(
        lambda: noop.http.get(f"/api/v1/deployments/{deployed.json()['id']}", headers=noop.auth()),
        lambda r: r.json()["state"] == "succeeded",
        what="the deployment to succeed",
    )
    assert done.json()["component"] == "demo"
    still = await noop.http.get("/api/v1/components/demo", headers=noop.auth())
    assert still.status_code == 200


async def test_a_deployment_during_a_retire_of_its_environment_is_refused(
    noop: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    real_retire = NoopProvider.retire

    async def slow_retire(
        self: NoopProvider, component: str, environment: str | None = None
    ) -> None:
        await release.wait()
        await real_retire(self, component, environment)

    monkeypatch.setattr(NoopProvider, "retire", slow_retire)
    asked = _waits_for_the_lock(monkeypatch)
    deploy = _between_check_and_act(
        monkeypatch,
        exclusion,
        "refuse_while_deploying",
        lambda: noop.http.post("/api/v1/deployments", json=DEPLOY, headers=noop.auth()),
        asked,
    )
    retire = asyncio.create_task(
        noop.http.delete("/api/v1/components/demo/environments/dev", headers=noop.auth())
    )
    await wait_for(lambda: _started(deploy), what="the deployment request to be sent")
    deployed = await deploy[0]
    release.set()
    retired = await retire
    assert deployed.status_code == 409, deployed.text
    assert retired.status_code == 200, retired.text


async def _started(tasks: list[asyncio.Task[httpx.Response]]) -> bool:
    return bool(tasks)
