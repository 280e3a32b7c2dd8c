"""Promotion pipelines with real processes (the API, a worker running the real workflows on the
no-op provider, the session's Temporal server): dev -> staging -> production with an admin
approval before production. The run waits at the gate; an operator's approval is refused
naming `admin`; an admin's passes; the combination ends verified in all three environments.
Then a person deploys another version by hand in dev: the next run holds auto-promotion into
dev until the hold is released. Last, dev is put back by hand to the combination the first run
verified, and the rollback is propagated on request: staging (which has the second run's
combination) is moved back by a release and held; production, which has it already, is left
alone; staging's v2, which production never verified, is refused (409)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.system import System
from tests.integration.test_components_api import DEMO
from tests.support import wait_for

API = "/api/v1/pipelines"
PIPELINE = {
    "name": "shop",
    "stages": [
        {"environment": "dev", "auto_promote": True},
        {"environment": "staging", "auto_promote": True, "gates": {"soak": "1s"}},
        {
            "environment": "production",
            "auto_promote": True,
            "gates": {"approval": {"role": "admin"}},
        },
    ],
}


async def _run(system: System, components: dict[str, str]) -> str:
    resp = await system.http.post(
        f"{API}/shop/runs", json={"components": components}, headers=system.auth()
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


async def _until(
    system: System, run_id: str, done: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        resp = await system.http.get(f"{API}/shop/runs/{run_id}", headers=system.auth())
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    return await wait_for(get, done, within=60, what=what)


def _waits_on(env: str, gate: str) -> Callable[[dict[str, Any]], bool]:
    def check(run: dict[str, Any]) -> bool:
        stages = (run.get("status") or {}).get("stages") or []
        return any(s["environment"] == env and s["waiting_on"] == gate for s in stages)

    return check


async def test_a_pipeline_promotes_a_verified_combination_through_an_admin_gate(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(noop=True)
    admin = system.auth()
    assert (await system.http.post("/api/v1/components", json=DEMO, headers=admin)).is_success
    resp = await system.http.post(API, json=PIPELINE, headers=admin)
    assert resp.status_code == 201, resp.text
    assert (await system.http.post(API, json=PIPELINE, headers=admin)).status_code == 409
    bad = {**PIPELINE, "name": "bad"}
    bad["stages"] = [{"environment": "dev", "requires": {"from": ["production"]}}]
    refused = await system.http.post(API, json=bad, headers=admin)
    assert refused.status_code == 422 and "not a stage of the pipeline" in refused.text
    unknown = await system.http.post(
        f"{API}/shop/runs", json={"components": {"nope": "v1"}}, headers=admin
    )
    assert unknown.status_code == 422 and "no component nope" in unknown.text

    run_id = await _run(system, {"demo": "v1"})
    run = await _until(system, run_id, _waits_on("production", "approval"), "the admin gate")
    stages = {s["environment"]: s for s in run["status"]["stages"]}
    assert stages["dev"]["state"] == stages["staging"]["state"] == "verified"
    assert stages["staging"]["release_id"].startswith("rel-")
    busy = await system.http.put(f"{API}/shop", json={"stages": PIPELINE["stages"]}, headers=admin)
    assert busy.status_code == 409, busy.text

    operator = system.auth(await system.key("operator"))
    approve = f"{API}/shop/runs/{run_id}/approve"
    denied = await system.http.post(approve, headers=operator)
    assert denied.status_code == 403 and "needs the admin role" in denied.text, denied.text
    assert (await system.http.post(approve, headers=admin)).status_code == 200
    run = await _until(system, run_id, lambda r: r["state"] == "succeeded", "the run to end")
    assert run["status"]["stages"][2]["approvals"][0]["by"] == "apikey:admin"

    view = (await system.http.get(f"{API}/shop", headers=admin)).json()
    verified = {e["environment"]: e["verified"] for e in view["environments"]}
    assert set(verified) == {"dev", "staging", "production"}
    assert all(
        v["components"] == {"demo": "v1"} and v["run_id"] == run_id for v in verified.values()
    )

    # A person deploys another version in dev: automation must not quietly undo it.
    by_hand = {"component": "demo", "environment": "dev", "version": "v0"}
    dep = await system.http.post("/api/v1/deployments", json=by_hand, headers=admin)
    assert dep.status_code == 202, dep.text

    async def done() -> str:
        got = await system.http.get(f"/api/v1/deployments/{dep.json()['id']}", headers=admin)
        return str(got.json()["state"])

    await wait_for(done, lambda s: s == "succeeded", within=30, what="the deployment by hand")
    second = await _run(system, {"demo": "v2"})
    held = await _until(system, second, _waits_on("dev", "hold"), "the hold on dev")
    assert "deployed by hand to v0 by apikey:admin" in held["status"]["stages"][0]["why"]
    hold = (await system.http.get(f"{API}/shop", headers=admin)).json()["environments"][0]
    assert hold["hold"]["set_by"] == "pipeline:shop"
    released = await system.http.delete(f"{API}/shop/holds/dev", headers=admin)
    assert released.status_code == 200, released.text
    await _until(system, second, _waits_on("production", "approval"), "the second run's gate")
    abort = await system.http.post(f"{API}/shop/runs/{second}/abort", headers=admin)
    assert abort.status_code == 200, abort.text
    await _until(system, second, lambda r: r["state"] == "aborted", "the abort")

    # dev is put back to v1 by hand; staging has v2 (the second run), production v1.
    back = await system.http.post(
        "/api/v1/deployments", json={**by_hand, "version": "v1"}, headers=admin
    )
    assert back.status_code == 202, back.text
    dep = back
    await wait_for(done, lambda s: s == "succeeded", within=30, what="the rollback by hand")
    # staging serves v2, which production never verified: refused, naming why.
    never = await system.http.post(
        f"{API}/shop/environments/staging/propagate-rollback", headers=admin
    )
    assert never.status_code == 409, never.text
    assert "was never verified in production" in never.json()["error"]["message"], never.text
    resp = await system.http.post(
        f"{API}/shop/environments/dev/propagate-rollback",
        json={"reason": "v2 is bad"},
        headers=admin,
    )
    assert resp.status_code == 202, resp.text
    propagated = resp.json()["id"]
    run = await _until(system, propagated, lambda r: r["state"] == "succeeded", "the propagation")
    assert [s["environment"] for s in run["status"]["stages"]] == ["staging"]
    assert run["status"]["propagated_from"] == "dev"
    view = (await system.http.get(f"{API}/shop", headers=admin)).json()
    assert view["runs"][0]["propagated_from"] == "dev"
    staging = view["environments"][1]
    assert staging["verified"]["components"] == {"demo": "v1"}
    assert "propagated the rollback of dev" in staging["hold"]["reason"]
