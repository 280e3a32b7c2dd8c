"""The system in one process, as the integration tests drive it: the real API app (through
ASGI), a real worker, the session's Temporal dev server and the test's own store. The fixtures
that build it are in conftest.py; this module holds what tests import."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from temporalio.client import Client
from temporalio.worker import Worker

from activities.infrastructure.local.provider import LocalProvider
from activities.infrastructure.provider import InfrastructureProvider
from core.db.engine import make_engine, sessions
from core.settings import Settings
from core.temporal import connect
from core.vault import open_secret_store
from tests.noop_provider import NoopProvider
from tests.support import wait_for
from workers.registry import WORKFLOWS, activities


def api_operations(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) of every operation the app serves, from the app itself (routers
    included), so a test over them cannot forget a new route."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path is not None:
            found += [(method, context.path, route) for method in sorted(route.methods)]
    return found


@dataclass
class System:
    settings: Settings
    http: httpx.AsyncClient
    admin_key: str
    temporal: Client

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    async def key(self, role: str, name: str | None = None) -> str:
        resp = await self.http.post(
            "/api/v1/apikeys",
            json={"name": name or f"{role}-key", "role": role},
            headers=self.auth(),
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["key"])

    async def start(self, wf_type: str = "component-health-check", **body: Any) -> httpx.Response:
        payload = {"type": wf_type, "input": body.pop("input", {}), **body}
        return await self.http.post(
            "/api/v1/orchestration/workflows", json=payload, headers=self.auth()
        )

    async def get(self, wf_id: str) -> dict[str, Any]:
        resp = await self.http.get(f"/api/v1/orchestration/workflows/{wf_id}", headers=self.auth())
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    async def until_status(self, wf_id: str, *states: str) -> dict[str, Any]:
        return await wait_for(
            lambda: self.get(wf_id), lambda d: d["status"] in states, what=f"{wf_id} {states}"
        )


async def run_noop_worker(
    settings: Settings,
    stop: asyncio.Event,
    ready: Any,
    provider: InfrastructureProvider | None = None,
) -> None:
    """The real workflows and activities on the no-op provider (or `provider`, another fake:
    tests/shared_noop_provider.py for several worker processes), until `stop` is set."""
    client = await connect(settings)
    engine = make_engine(settings)
    try:
        async with httpx.AsyncClient() as http:
            worker = Worker(
                client,
                task_queue=settings.task_queue,
                workflows=list(WORKFLOWS),
                activities=activities(
                    sessions(engine),
                    http,
                    provider or NoopProvider(),
                    secrets=open_secret_store(settings),
                    client=client,
                    settings=settings,
                ),
                graceful_shutdown_timeout=timedelta(seconds=5),
            )
            async with worker:
                ready.write_text("ready\n")
                await stop.wait()
    finally:
        await engine.dispose()


async def terminate_leftovers(system: System, client: Client | None = None) -> None:
    """A workflow a failed test left running must not block the next test: workflow ids
    such as deploy:<component>:<environment> are shared by every test on the server.
    The test's schedules go first, so none starts another run after this. `client`: one that
    reaches the server whatever the test did to its own (a TLS relay it has closed)."""
    client = client or system.temporal
    await delete_schedules(client, system.settings.task_queue)
    query = f"TaskQueue = '{system.settings.task_queue}' AND ExecutionStatus = 'Running'"
    try:
        async for execution in client.list_workflows(query, rpc_timeout=timedelta(seconds=2)):
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            await handle.terminate(reason="test teardown")
    except Exception:  # a test that broke Temporal on purpose: nothing to clean
        pass


async def delete_schedules(client: Client, queue: str) -> None:
    """Schedules are not workflows: delete those whose runs go to the test's task queue,
    or they fire for ever on the shared server."""
    try:
        async for entry in await client.list_schedules(rpc_timeout=timedelta(seconds=2)):
            handle = client.get_schedule_handle(entry.id)
            try:
                desc = await handle.describe(rpc_timeout=timedelta(seconds=2))
            except Exception:  # deleted by the test itself since the list was made
                continue
            action = desc.raw_description.schedule.action.start_workflow
            if action.task_queue.name == queue:
                await handle.delete(rpc_timeout=timedelta(seconds=2))
    except Exception:  # a test that broke Temporal on purpose: nothing to clean
        pass


async def retire_instances(system: System) -> None:
    """Stop every instance and router the test's worker started (they outlive workers)."""
    async with httpx.AsyncClient() as http:
        provider = LocalProvider(system.settings.home, http)
        for component, environment in await provider.targets():
            await provider.retire(component, environment)


async def exists_or_failed(path: Any, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # raises the worker's error into the test
        raise AssertionError("the worker stopped before it was ready")
    return bool(path.exists())
