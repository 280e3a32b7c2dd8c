"""Live updates over a real port (uvicorn: ASGI test transports do not stream): twenty
watchers of one canary each get its state on connect, every change in order, and the end;
the poller reads it as often as for one watcher; Last-Event-ID resumes; 404 and 403."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from prometheus_client import REGISTRY

from tests.integration.deploying import FINAL, deploy, register_demo, until
from tests.integration.schedules_http import served  # noqa: F401 - the fixture
from tests.integration.system import System
from tests.support import wait_for

WATCHERS = 20
WITHIN = 30.0


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The events of a server-sent event stream, as {"event", "id", "data"} (pings skipped)."""
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


async def all_received(*clients: Client) -> bool:
    for client in clients:
        if client.task.done():
            client.task.result()  # a failed watcher fails the test with its own error
    return all(client.received for client in clients)


def polls() -> float:
    return REGISTRY.get_sample_value("r2c_live_polls_total", {"kind": "deployment"}) or 0.0


class Client:
    """One watcher: every event it received, until `end`."""

    def __init__(self, http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.received: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._run(http, url, headers))

    async def _run(self, http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        async with http.stream("GET", url, headers=headers) as resp:
            assert resp.status_code == 200, await resp.aread()
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for event in events(resp):
                event["body"] = json.loads(event["data"])
                self.received.append(event)
        assert self.received[-1]["event"] == "end"


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


async def test_many_watchers_of_a_canary_cost_one_poller(served: System) -> None:  # noqa: F811
    system = await register_demo(served)
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
    base = f"http://127.0.0.1:{system.settings.port}"
    limits = httpx.Limits(max_connections=WATCHERS + 10)
    clients: list[Client] = []
    async with httpx.AsyncClient(base_url=base, timeout=WITHIN, limits=limits) as http:
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
        assert [e["event"] for e in client.received].count("end") == 1
        assert client.received[-1]["body"] == final  # the body GET answers
    assert int(level.received[0]["id"]) > int(first["id"])
    assert clients[0].received[0]["body"]["status"]["weights"] != final["status"]["weights"]
    # One poller for 22 watchers: one read per interval at most (and the first).
    interval = system.settings.live_poll_ms / 1000
    read = polls() - before
    assert read <= elapsed / interval + 2, (read, elapsed)
    print(f"{len(clients)} watchers, {elapsed:.1f} s: {read:.0f} polls ({read / elapsed:.1f}/s)")
