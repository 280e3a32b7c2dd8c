"""Live updates over a real port (uvicorn: ASGI test transports do not stream): twenty
watchers of one canary each get its state on connect, every change in order, and the end;
the poller reads it as often as for one watcher; Last-Event-ID resumes; 404 and 403. A
release's stream ends with the release; shutting the API down ends open streams and leaves
no poller running."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY

from api.app import create_app
from tests.integration.deploying import FINAL, deploy, register_demo, until
from tests.integration.system import System
from tests.support import wait_for

WATCHERS = 20
WITHIN = 30.0


@dataclass
class Served:
    system: System  # its `http` speaks ASGI to another app of the same store
    app: FastAPI
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.system.settings.port}"


@pytest.fixture
async def served(make_system: Callable[..., Any]) -> AsyncIterator[Served]:
    """The system on the no-op provider, its API also on a real port."""
    system: System = await make_system(noop=True, live_ping_seconds=0.5)
    app = create_app(system.settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=system.settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
        return server.started

    await wait_for(started, what="uvicorn to listen")
    try:
        yield Served(system, app, server, task)
    finally:
        server.should_exit = True
        await task


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The events of a server-sent event stream, as {"event", "id", "data"}; a comment as
    {"comment": text}."""
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


async def all_received(*clients: Client) -> bool:
    for client in clients:
        if client.task.done():
            client.task.result()  # a failed watcher fails the test with its own error
    return all(client.received for client in clients)


async def _true(value: bool) -> bool:
    return value


def polls() -> float:
    return REGISTRY.get_sample_value("r2c_live_polls_total", {"kind": "deployment"}) or 0.0


class Client:
    """One watcher: every event it received, until `end`."""

    def __init__(
        self, http: httpx.AsyncClient, url: str, headers: dict[str, str], *, ends: bool = True
    ) -> None:
        self.received: list[dict[str, Any]] = []
        self.pings = 0
        self.task = asyncio.create_task(self._run(http, url, headers, ends))

    async def _run(
        self, http: httpx.AsyncClient, url: str, headers: dict[str, str], ends: bool
    ) -> None:
        async with http.stream("GET", url, headers=headers) as resp:
            assert resp.status_code == 200, await resp.aread()
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for event in events(resp):
                if event.get("comment") == "ping":
                    self.pings += 1
                    continue
                event["body"] = json.loads(event["data"])
                self.received.append(event)
        assert not ends or self.received[-1]["event"] == "end", self.received[-1:]


async def refusals(system: System, http: httpx.AsyncClient, deployment_id: str) -> None:
    """404 for an unknown id and 403 out of a scoped key's scope, both before any stream."""
    unknown = await http.get("/api/v1/deployments/nothing-here/events", headers=system.auth())
    assert unknown.status_code == 404, unknown.text
    made = await system.http.post(
        "/api/v1/apikeys",
        json={
            "name": "live-elsewhere",
            "role": "viewer",
            "scopes": [{"components": ["other"], "environments": ["*"]}],
            "read_everything": False,
        },
        headers=system.auth(),
    )
    assert made.status_code == 201, made.text
    elsewhere = system.auth(made.json()["key"])
    url = f"/api/v1/deployments/{deployment_id}/events"
    async with http.stream("GET", url, headers=elsewhere) as outside:
        assert outside.status_code == 403, outside.headers


async def test_many_watchers_of_a_canary_cost_one_poller(served: Served) -> None:
    system = await register_demo(served.system)
    v1 = await deploy(system, "v1")
    await until(system, v1["id"], *FINAL)
    strategy = {
        "type": "canary",
        "steps": [{"set_weight": 20}, {"pause": {}}, {"set_weight": 60}, {"set_weight": 100}],
    }
    started = await deploy(system, "v2", strategy)
    paused = await until(system, started["id"], "paused")
    url = f"/api/v1/deployments/{started['id']}/events"
    auth = system.auth()
    limits = httpx.Limits(max_connections=WATCHERS + 10)
    clients: list[Client] = []
    async with httpx.AsyncClient(base_url=served.url, timeout=WITHIN, limits=limits) as http:
        await refusals(system, http, started["id"])
        before = polls()
        clock = asyncio.get_running_loop().time
        began = clock()
        try:
            clients += [Client(http, url, auth) for _ in range(WATCHERS)]
            await wait_for(lambda: all_received(*clients), what="every watcher's first snapshot")
            first = clients[0].received[0]
            assert first["event"] == "status" and first["body"]["state"] == "paused"
            assert first["body"]["status"]["weights"] == paused["status"]["weights"]
            # Resume: an older id gets the current snapshot at once; the current id gets
            # nothing until the next change.
            behind = Client(http, url, {**auth, "Last-Event-ID": "1"})
            level = Client(http, url, {**auth, "Last-Event-ID": first["id"]})
            clients += [behind, level]
            await wait_for(lambda: all_received(behind), what="the resumed watcher's snapshot")
            assert behind.received[0]["id"] == first["id"]
            promote = await http.put(
                f"/api/v1/deployments/{started['id']}", json={"desired": "promoted"}, headers=auth
            )
            assert promote.status_code == 200, promote.text
            await asyncio.wait_for(asyncio.gather(*(c.task for c in clients)), WITHIN)
        finally:
            for client in clients:
                client.task.cancel()
        elapsed = clock() - began
    final = (await system.http.get(f"/api/v1/deployments/{started['id']}", headers=auth)).json()
    assert final["state"] == "succeeded", final
    for client in clients:
        ids = [int(e["id"]) for e in client.received]
        assert ids == sorted(set(ids)), ids  # increasing, never repeated
        bodies = [e["data"] for e in client.received]
        assert len(set(bodies)) == len(bodies), "an unchanged state was sent again"
        assert [e["event"] for e in client.received].count("end") == 1
        assert client.received[-1]["body"] == final  # the body GET answers
    assert int(level.received[0]["id"]) > int(first["id"])
    assert clients[0].received[0]["body"]["status"]["weights"] != final["status"]["weights"]
    # One poller for 22 watchers: one read per interval at most (and the first).
    interval = system.settings.live_poll_ms / 1000
    read = polls() - before
    assert read <= elapsed / interval + 2, (read, elapsed)
    print(f"{len(clients)} watchers, {elapsed:.1f} s: {read:.0f} polls ({read / elapsed:.1f}/s)")


async def test_a_release_stream_ends_with_it_and_shutdown_ends_open_streams(
    served: Served,
) -> None:
    system = await register_demo(served.system)
    auth = system.auth()
    async with httpx.AsyncClient(base_url=served.url, timeout=WITHIN) as http:
        strategy = {"type": "canary", "steps": [{"set_weight": 50}, {"pause": {"duration": "1s"}}]}
        body = {"environment": "dev", "components": {"demo": "v1"}, "strategy": strategy}
        made = await http.post("/api/v1/releases", json=body, headers=auth)
        assert made.status_code == 202, made.text
        release = Client(http, f"/api/v1/releases/{made.json()['id']}/events", auth)
        await asyncio.wait_for(release.task, WITHIN)
        final = await http.get(f"/api/v1/releases/{made.json()['id']}", headers=auth)
        assert release.received[-1]["body"] == final.json()
        assert final.json()["state"] == "succeeded"
        assert (
            await http.get("/api/v1/releases/rel-000000000000/events", headers=auth)
        ).status_code == 404

        waiting = {"type": "canary", "steps": [{"set_weight": 20}, {"pause": {}}]}
        started = await deploy(system, "v2", waiting)
        await until(system, started["id"], "paused")
        url = f"/api/v1/deployments/{started['id']}/events"
        open_streams = [Client(http, url, auth, ends=False) for _ in range(3)]
        await wait_for(lambda: all_received(*open_streams), what="the open streams' snapshots")
        # Nothing changes while it waits for promote: the pings keep the streams alive.
        await wait_for(
            lambda: _true(all(s.pings for s in open_streams)), what="a ping on every stream"
        )
        hub = served.app.state.live_hub
        poller = hub.pollers[("deployment", started["id"])]
        served.server.should_exit = True
        await asyncio.wait_for(served.task, WITHIN)  # the streams do not hold the server
        for stream in open_streams:
            await asyncio.wait_for(asyncio.gather(stream.task, return_exceptions=True), WITHIN)
        assert poller.task.done() and not hub.pollers
