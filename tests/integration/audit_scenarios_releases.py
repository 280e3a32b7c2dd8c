"""Audit scenarios of the releases routes (issue 13): one per mutating route.

The release's own deployments are audited too (as `release:<id>`), so each scenario leaves
them nothing to do during the request: the created release's only deployment is refused by
the environment's policy (a rolling deployment where blue-green is required; a refusal in the
workflow leaves no event), and the aborted one waits paused at its canary step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.system import System
from tests.support import wait_for

Request = tuple[str, str, dict[str, Any] | None]
API = "/api/v1/releases"
PAUSED_CANARY = {"type": "canary", "steps": [{"set_weight": 50}, {"pause": {}}]}


async def create(s: System) -> Request:
    policy = {"allowed_strategies": ["blue_green"]}
    resp = await s.http.put("/api/v1/policies/audit", json=policy, headers=s.auth())
    assert resp.status_code == 200, resp.text
    return "POST", API, {"environment": "audit", "components": {"demo": "v1"}}


async def abort(s: System) -> Request:
    first = {"component": "demo", "environment": "dev", "version": "v1"}
    resp = await s.http.post("/api/v1/deployments", json=first, headers=s.auth())
    assert resp.status_code == 202, resp.text
    await _state(s, f"/api/v1/deployments/{resp.json()['id']}", "succeeded")
    body = {"environment": "dev", "components": {"demo": "v2"}, "strategy": PAUSED_CANARY}
    resp = await s.http.post(API, json=body, headers=s.auth())
    assert resp.status_code == 202, resp.text
    url = f"{API}/{resp.json()['id']}"

    async def paused() -> bool:
        got = (await s.http.get(url, headers=s.auth())).json()
        demo = ((got.get("status") or {}).get("components") or {}).get("demo") or {}
        if not demo.get("deployment_id"):
            return False
        dep = await s.http.get(f"/api/v1/deployments/{demo['deployment_id']}", headers=s.auth())
        return dep.status_code == 200 and dep.json()["state"] == "paused"

    await wait_for(paused, within=30, what="the release's deployment to pause")
    return "POST", f"{url}/abort", {"reason": "audit"}


async def _state(s: System, url: str, state: str) -> None:
    async def get() -> str:
        return str((await s.http.get(url, headers=s.auth())).json()["state"])

    await wait_for(get, lambda got: got == state, within=30, what=f"{url} to be {state}")


SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {
    ("POST", API): create,
    ("POST", f"{API}/{{release_id}}/abort"): abort,
}
