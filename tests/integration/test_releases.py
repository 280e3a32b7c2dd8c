"""Releases with real processes: three demo components db-migrate -> api -> web on the local
provider (real instances and routers, real traffic), deployed in dependency order; a bad
canary in `api` rolls back `api` (by itself) and `db-migrate` (by the release), `web` untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cli.demo import demo_spec
from cli.load import run_load
from tests.integration.deploying import versions
from tests.integration.system import System
from tests.support import wait_for

ORDER = ("db-migrate", "api", "web")
FINAL = ("succeeded", "rolled_back", "failed")


async def _register(system: System) -> None:
    for name, needs in zip(ORDER, (None, "db-migrate", "api"), strict=True):
        spec = demo_spec(name, 1)
        spec["runtime"]["health_check"]["interval_seconds"] = 0.5
        if needs:
            spec["depends_on"] = [{"component": needs}]
        resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
        assert resp.status_code == 201, resp.text


async def _release(system: System, body: dict[str, Any]) -> dict[str, Any]:
    resp = await system.http.post("/api/v1/releases", json=body, headers=system.auth())
    assert resp.status_code == 202, resp.text
    release_id = resp.json()["id"]

    async def get() -> dict[str, Any]:
        got = await system.http.get(f"/api/v1/releases/{release_id}", headers=system.auth())
        assert got.status_code == 200, got.text
        return dict(got.json())

    return await wait_for(
        get, lambda r: r["state"] in FINAL, within=90, what=f"release {release_id} to end"
    )


def _t(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def timeline(release: dict[str, Any]) -> str:
    """component, start, end, outcome (and the release's rollback), for the report."""
    lines = []
    for name in ORDER:
        p = release["status"]["components"][name]
        line = f"{name}: {p['started_at']} -> {p['finished_at']} {p['state']}"
        if p.get("rollback_state"):
            line += (
                f"; rolled back by the release {p['rollback_started_at']} ->"
                f" {p['rollback_finished_at']} {p['rollback_state']}"
            )
        lines.append(line)
    return "\n".join(lines)


async def _endpoint(system: System, deployment_id: str) -> str:
    resp = await system.http.get(f"/api/v1/deployments/{deployment_id}", headers=system.auth())
    return str(resp.json()["status"]["endpoint"])


async def test_a_release_deploys_in_order_and_a_bad_canary_rolls_back_in_reverse(
    system: System,
) -> None:
    await _register(system)
    first = await _release(system, {"environment": "dev", "components": dict.fromkeys(ORDER, "v1")})
    assert first["state"] == "succeeded", first
    s = first["status"]
    assert s["waves"] == [["db-migrate"], ["api"], ["web"]]
    c = s["components"]
    for before, after in zip(ORDER, ORDER[1:], strict=False):
        assert _t(c[before]["finished_at"]) <= _t(c[after]["started_at"]), timeline(first)
    print("release of v1:\n" + timeline(first))
    endpoints = {n: await _endpoint(system, c[n]["deployment_id"]) for n in ORDER}

    # api's next version fails every request (its configuration; the running v1 keeps its own).
    bad = {"value": "1", "scope": {"component": "api", "environment": "dev"}}
    resp = await system.http.put(
        "/api/v1/configuration/demo.error_rate", json=bad, headers=system.auth()
    )
    assert resp.status_code in (200, 201), resp.text
    error_rate = {"name": "error_rate", "failure_condition": "result > 0.05",
                  "initial_delay": "1s", "interval": "1s", "count": 2}  # fmt: skip
    canary = {
        "type": "canary",
        "steps": [{"set_weight": 50}, {"analysis": {"metrics": [error_rate]}}, {"set_weight": 100}],
    }
    load = asyncio.create_task(run_load(endpoints["api"] + "/", rps=40, duration=20))
    second = await _release(
        system,
        {
            "environment": "dev",
            "components": dict.fromkeys(ORDER, "v2"),
            "strategies": {"api": canary},
        },
    )
    load.cancel()
    print("release of v2:\n" + timeline(second))
    assert second["state"] == "rolled_back", second
    assert second["failed_component"] == "api"
    assert "api" in second["reason"]
    c = second["status"]["components"]
    assert c["db-migrate"]["state"] == "succeeded"
    assert c["api"]["state"] == "rolled_back"  # by its own canary analysis
    assert "error_rate" in c["api"]["reason"], c["api"]["reason"]
    assert c["api"]["rollback_state"] is None
    assert c["db-migrate"]["rollback_state"] == "succeeded"
    assert _t(c["db-migrate"]["rollback_started_at"]) >= _t(c["api"]["finished_at"])
    assert c["web"]["state"] is None and c["web"]["deployment_id"] is None
    rollback_seconds = (
        _t(second["status"]["finished_at"]) - _t(c["api"]["finished_at"])
    ).total_seconds()
    print(f"rollback of the release after api's failure: {rollback_seconds:.2f} s")
    for name in ORDER:
        assert await versions(endpoints[name], 5) == {"v1"}, name


async def test_release_requests_are_checked(make_system: Callable[..., Any]) -> None:
    """422 with the reason for what cannot be planned, 404 and 409 where they apply; a
    release on the no-op provider ends, is listed, and can no longer be aborted."""
    system: System = await make_system(noop=True)
    await _register(system)
    auth = system.auth()

    async def post(body: dict[str, Any]) -> Any:
        return await system.http.post("/api/v1/releases", json=body, headers=auth)

    unknown = await post({"environment": "dev", "components": {"nope": "v1"}})
    assert unknown.status_code == 422 and "no component nope" in unknown.text
    many = {f"c{i:02d}": "v1" for i in range(51)}
    assert (await post({"environment": "dev", "components": many})).status_code == 422
    assert (await post({"environment": "Bad_Env", "components": {"api": "v1"}})).status_code == 422
    stray = {"environment": "dev", "components": {"api": "v1"}, "strategies": {"web": {}}}
    assert (await post(stray)).status_code == 422
    missing = await system.http.get("/api/v1/releases/rel-000000000000", headers=auth)
    assert missing.status_code == 404
    done = await _release(system, {"environment": "dev", "components": {"db-migrate": "v1"}})
    assert done["state"] == "succeeded", done
    listed = await system.http.get("/api/v1/releases", headers=auth)
    assert [r["id"] for r in listed.json()["items"]] == [done["id"]]
    late = await system.http.post(f"/api/v1/releases/{done['id']}/abort", headers=auth)
    assert late.status_code == 409, late.text
