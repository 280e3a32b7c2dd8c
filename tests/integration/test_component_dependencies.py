"""Component dependencies through the API: definitions that would close a cycle or name an
unknown component are refused, a component others depend on stays, the graph shows what runs
where (JSON and DOT, limited for scoped callers), and a deployment does not start while a
dependency serves a version its constraint refuses. The worker runs the real workflows on the
no-op provider: what is under test is the API's rules."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cli.demo import demo_spec
from core.db import components as component_store
from tests.integration.deploying import FINAL
from tests.integration.system import System
from tests.support import wait_for

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)


@pytest.fixture
async def noop(make_system: Callable[..., Any]) -> System:
    system: System = await make_system(noop=True)
    return system


def spec(name: str, *deps: str | tuple[str, str]) -> dict[str, Any]:
    body = demo_spec(name, 1)
    body["depends_on"] = [
        {"component": d} if isinstance(d, str) else {"component": d[0], "version": d[1]}
        for d in deps
    ]
    return body


async def register(system: System, name: str, *deps: str | tuple[str, str]) -> None:
    resp = await system.http.post(
        "/api/v1/components", json=spec(name, *deps), headers=system.auth()
    )
    assert resp.status_code == 201, resp.text


def put(system: System, name: str, *deps: str | tuple[str, str]) -> Any:
    return system.http.put(
        f"/api/v1/components/{name}", json=spec(name, *deps), headers=system.auth()
    )


def error(resp: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()["error"]
    return body


async def deployed(system: System, component: str, version: str) -> None:
    body = {"component": component, "environment": "dev", "version": version}
    resp = await system.http.post("/api/v1/deployments", json=body, headers=system.auth())
    assert resp.status_code == 202, resp.text
    path = f"/api/v1/deployments/{resp.json()['id']}"

    async def state() -> str:
        return str((await system.http.get(path, headers=system.auth())).json()["state"])

    assert await wait_for(state, lambda s: s in FINAL, what=f"{component} deployed") == "succeeded"


async def test_cycles_unknown_dependencies_and_dependents_are_refused(noop: System) -> None:
    system = noop
    unknown = await system.http.post(
        "/api/v1/components", json=spec("web", "api"), headers=system.auth()
    )
    assert unknown.status_code == 422, unknown.text
    assert "not registered: api" in error(unknown)["message"]
    assert "register each dependency first" in error(unknown)["hint"]

    itself = await system.http.post(
        "/api/v1/components", json=spec("api", "api"), headers=system.auth()
    )
    assert itself.status_code == 422 and "cannot depend on itself" in itself.text

    await register(system, "db-migrate")
    await register(system, "api", "db-migrate")
    await register(system, "web", "api")
    direct = await put(system, "api", "db-migrate", "web")
    assert direct.status_code == 422, direct.text
    assert "cycle: api -> web -> api" in error(direct)["message"]
    indirect = await put(system, "db-migrate", "web")
    assert indirect.status_code == 422, indirect.text
    assert "cycle: api -> db-migrate -> web -> api" in error(indirect)["message"]
    stored = await system.http.get("/api/v1/components/db-migrate", headers=system.auth())
    assert stored.json()["depends_on"] == [] and stored.json()["revision"] == 1

    removed = await system.http.delete("/api/v1/components/api", headers=system.auth())
    assert removed.status_code == 409, removed.text
    assert "web depend on 'api'" in error(removed)["message"]
    assert "depends_on" in error(removed)["hint"]
    assert (
        await system.http.get("/api/v1/components/api", headers=system.auth())
    ).status_code == 200


async def test_two_writes_that_together_close_a_cycle_one_is_refused(
    noop: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`api -> web` and `web -> api` at once: the first reads the graph, then lets the second
    start and goes on only once the second asks for a lock; the second then finds the cycle
    (on PostgreSQL, because of the graph lock: each write locks only its own row)."""
    system = noop
    await register(system, "api")
    await register(system, "web")
    second_waits = asyncio.Event()
    real_lock, real_lock_graph, real_graph = (
        component_store.lock,
        component_store.lock_graph,
        component_store.graph,
    )
    second: list[asyncio.Task[httpx.Response]] = []

    # Any lock asked for once the second write started is the second's: it waits there.
    async def lock(session: Any, ref: str) -> Any:
        if second:
            second_waits.set()
        return await real_lock(session, ref)

    async def lock_graph(session: Any) -> None:
        if second:
            second_waits.set()
        await real_lock_graph(session)

    async def graph(session: Any) -> dict[str, list[str]]:
        found = await real_graph(session)
        if not second:
            second.append(asyncio.create_task(put(system, "web", "api")))
            await asyncio.wait_for(second_waits.wait(), 10)
        return found

    monkeypatch.setattr(component_store, "lock", lock)
    monkeypatch.setattr(component_store, "lock_graph", lock_graph)
    monkeypatch.setattr(component_store, "graph", graph)
    first = await put(system, "api", "web")
    answers = {first.status_code, (await second[0]).status_code}
    assert answers == {200, 422}, (first.text, second[0].result().text)
    refused = first if first.status_code == 422 else second[0].result()
    assert "cycle" in error(refused)["message"]
    graph_now = await system.http.get("/api/v1/components/graph", headers=system.auth())
    assert len(graph_now.json()["edges"]) == 1


async def test_graph_and_version_constraints(noop: System) -> None:
    system = noop
    await register(system, "db-migrate")
    await register(system, "api", "db-migrate")
    await register(system, "web", ("api", ">=2.0"))
    await deployed(system, "api", "1.5")

    refused = await system.http.post(
        "/api/v1/deployments",
        json={"component": "web", "environment": "dev", "version": "1.0"},
        headers=system.auth(),
    )
    assert refused.status_code == 409, refused.text
    assert error(refused)["message"] == (
        "web needs api >=2.0 in dev: api serves 1.5: version 1.5 does not satisfy >=2.0"
    )
    assert "release" in error(refused)["hint"]
    # Elsewhere api is not deployed: no refusal (the graph shows it as unknown).
    elsewhere = {"component": "web", "environment": "staging", "version": "1.0"}
    resp = await system.http.post("/api/v1/deployments", json=elsewhere, headers=system.auth())
    assert resp.status_code == 202, resp.text

    graph = await system.http.get("/api/v1/components/graph", headers=system.auth())
    assert graph.status_code == 200, graph.text
    nodes = {n["name"]: n["environments"] for n in graph.json()["nodes"]}
    assert set(nodes) == {"db-migrate", "api", "web"}
    assert nodes["api"]["dev"]["version"] == "1.5"
    edges = {(e["from"], e["to"]): e for e in graph.json()["edges"]}
    assert set(edges) == {("api", "db-migrate"), ("web", "api")}
    assert edges[("web", "api")]["version"] == ">=2.0"
    satisfied = edges[("web", "api")]["satisfied"]
    assert satisfied["dev"] is False
    assert edges[("api", "db-migrate")]["satisfied"] == {"dev": None}

    dot = await system.http.get("/api/v1/components/graph?format=dot", headers=system.auth())
    assert dot.headers["content-type"].startswith("text/vnd.graphviz")
    text = dot.text
    assert text.startswith("digraph components {") and text.rstrip().endswith("}")
    found = set(re.findall(r'^\s*"([^"\\]+)" -> "([^"\\]+)"', text, re.M))
    assert found == set(edges)
    assert re.search(r'^\s*"web" -> "api" \[label=">=2.0"\];$', text, re.M)

    await deployed(system, "api", "2.1")
    started = await system.http.post(
        "/api/v1/deployments",
        json={"component": "web", "environment": "dev", "version": "1.0"},
        headers=system.auth(),
    )
    assert started.status_code == 202, started.text

    scoped = await system.http.post(
        "/api/v1/apikeys",
        json={
            "name": "web-dev",
            "role": "viewer",
            "scopes": [{"components": ["web", "api"], "environments": ["dev"]}],
            "read_everything": False,
        },
        headers=system.auth(),
    )
    assert scoped.status_code == 201, scoped.text
    seen = await system.http.get(
        "/api/v1/components/graph", headers=system.auth(scoped.json()["key"])
    )
    assert seen.status_code == 200, seen.text
    assert {n["name"] for n in seen.json()["nodes"]} == {"api", "web"}
    assert [(e["from"], e["to"]) for e in seen.json()["edges"]] == [("web", "api")]
    assert seen.json()["edges"][0]["satisfied"] == {"dev": True}
    web = next(n for n in seen.json()["nodes"] if n["name"] == "web")
    assert set(web["environments"]) <= {"dev"}
