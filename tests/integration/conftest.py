"""Fixtures of the integration tests: the system in one process (tests/integration/system.py)
against the session's Temporal dev server and this test's own store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from temporalio.client import Client

from activities.infrastructure.local.provider import LocalProvider
from api.app import create_app
from cli.bootstrap import ensure_admin_key
from core.db import apikeys
from core.db.migrate import upgrade
from core.settings import Settings
from tests.integration.openbao_fixture import openbao  # noqa: F401 - a fixture for all tests
from tests.integration.system import (
    System,
    exists_or_failed,
    retire_instances,
    run_noop_worker,
    terminate_leftovers,
)
from tests.support import wait_for
from workers.main import run_worker

TEARDOWN_SECONDS = 60


@pytest.fixture(scope="session", autouse=True)
def cheap_key_hashes() -> Iterator[None]:
    """API keys made in this process (every test's admin key, the keys tests make through
    the in-process API) are argon2id hashes at the lowest cost: hashing one, then verifying
    it on first use, costs about 1 s of CPU at production cost on a busy 2-core machine, in
    nearly every test. Still argon2id (verification reads the cost from the hash), so every
    check of a key is the real one. The production cost is what the processes tests start
    use (`r2c api`, `r2c up`, the CLI), and tests/unit/test_apikeys.py."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            apikeys, "_hasher", PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
        )
        yield


@pytest.fixture
async def make_system(
    make_settings: Callable[..., Settings], temporal_client: Client
) -> AsyncIterator[Callable[..., Any]]:
    """Start an API (and by default a worker) for the test; everything stops at its end."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
    contexts: list[Any] = []
    systems: list[System] = []

    async def build(*, worker: bool = True, noop: bool = False, **overrides: Any) -> System:
        """`noop`: the worker runs every workflow and activity on a provider that starts
        nothing (deployments complete at once, retires stop nothing)."""
        settings = make_settings(**overrides)
        await asyncio.to_thread(upgrade, settings)
        key_file, _ = await ensure_admin_key(settings)
        if worker:
            stop = asyncio.Event()
            ready = settings.home / "worker.ready"
            serve = run_noop_worker if noop else run_worker
            task = asyncio.create_task(serve(settings, stop, ready))
            stops.append((stop, task))
            await wait_for(lambda: exists_or_failed(ready, task), what="worker ready", within=30)
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        contexts.append(lifespan)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        contexts.append(http)
        system = System(settings, http, key_file.read_text().strip(), app.state.temporal)
        systems.append(system)
        return system

    yield build
    # Bounded: a teardown that waits for ever (a worker whose shutdown waits on an activity
    # that ignores its cancellation) would hang the whole run, not fail this test.
    try:
        async with asyncio.timeout(TEARDOWN_SECONDS):
            for system in systems:
                await terminate_leftovers(system, temporal_client)
                await retire_instances(system)
            for ctx in reversed(contexts):
                await ctx.__aexit__(None, None, None)
    finally:  # the workers stop even when the cleanup above ran out of time
        for stop, _ in stops:
            stop.set()
    if not stops:
        return
    done, hung = await asyncio.wait({task for _, task in stops}, timeout=TEARDOWN_SECONDS)
    for task in hung:
        task.cancel()
    for task in done:
        task.result()
    if hung:
        raise AssertionError(f"{len(hung)} worker(s) did not stop within {TEARDOWN_SECONDS} s")


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[LocalProvider]:
    """A local provider on the test's own home; whatever it started is retired at the end."""
    async with httpx.AsyncClient() as http:
        local = LocalProvider(tmp_path / "home", http)
        try:
            yield local
        finally:
            for component, environment in await local.targets():
                await local.retire(component, environment)


@pytest.fixture
async def system(make_system: Callable[..., Any]) -> System:
    result: System = await make_system()
    return result
