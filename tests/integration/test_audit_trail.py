"""Every mutating route leaves exactly one audit event, with the request's id.

The routes are taken from the app itself: a new mutating route without a scenario here fails
`test_every_mutating_route_has_a_scenario`. The worker runs the real workflows on the no-op
provider, so deployments, retires and health checks complete without starting anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from api.app import create_app
from core.settings import Settings
from tests.integration import (
    audit_scenarios_apikeys,
    audit_scenarios_configuration,
    audit_scenarios_events,
    audit_scenarios_line_stops,
    audit_scenarios_notifications,
    audit_scenarios_pipelines,
    audit_scenarios_policies,
    audit_scenarios_releases,
    audit_scenarios_schedules,
)
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System, api_operations
from tests.integration.test_components_api import DEMO
from tests.support import wait_for

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
PAUSED_CANARY = {"type": "canary", "steps": [{"set_weight": 50}, {"pause": {}}]}
Request = tuple[str, str, dict[str, Any] | None]


def mutating_routes() -> set[tuple[str, str]]:
    # The codec server's POSTs only transform the payloads they are given, and a replay only
    # judges recorded data again: they change nothing. Webhook deliveries are signed, not
    # keyed: test_webhooks.py checks their audit event.
    return {
        (method, path)
        for method, path, _ in api_operations(create_app(Settings()))
        if method in MUTATING
        and not path.startswith(("/codec/", "/api/v1/webhooks/"))
        and path != "/api/v1/analysis/replay"
    }


async def deploy(
    system: System, version: str, strategy: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"component": "demo", "environment": "dev", "version": version}
    if strategy:
        body["strategy"] = strategy
    resp = await system.http.post("/api/v1/deployments", json=body, headers=system.auth())
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


async def until(system: System, deployment_id: str, *states: str) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        resp = await system.http.get(f"/api/v1/deployments/{deployment_id}", headers=system.auth())
        return dict(resp.json())

    return await wait_for(get, lambda d: d["state"] in states, what=f"{deployment_id} {states}")


async def paused(system: System) -> str:
    """A running canary waiting for promotion (the first deployment skips its steps)."""
    await until(system, (await deploy(system, "v1"))["id"], "succeeded")
    second = (await deploy(system, "v2", PAUSED_CANARY))["id"]
    await until(system, second, "paused")
    return str(second)


async def create_key(s: System) -> Request:
    return "POST", "/api/v1/apikeys", {"name": "new-key", "role": "viewer"}


async def revoke_key(s: System) -> Request:
    await s.key("viewer", "old-key")
    return "DELETE", "/api/v1/apikeys/old-key", None


async def create_component(s: System) -> Request:
    return "POST", "/api/v1/components", {**DEMO, "name": "other"}


async def replace_component(s: System) -> Request:
    return "PUT", "/api/v1/components/demo", {**DEMO, "description": "changed"}


async def delete_component(s: System) -> Request:
    return "DELETE", "/api/v1/components/demo", None


async def retire_component(s: System) -> Request:
    return "DELETE", "/api/v1/components/demo/environments/qa", None


async def create_deployment(s: System) -> Request:
    return (
        "POST",
        "/api/v1/deployments",
        {"component": "demo", "environment": "dev", "version": "v1"},
    )


async def set_desired(s: System) -> Request:
    return "PUT", f"/api/v1/deployments/{await paused(s)}", {"desired": "aborted"}


async def act(s: System) -> Request:
    return "POST", f"/api/v1/deployments/{await paused(s)}/promote", None


async def retry(s: System) -> Request:
    dep = await paused(s)
    abort = await s.http.post(f"/api/v1/deployments/{dep}/abort", headers=s.auth())
    assert abort.status_code == 200, abort.text
    await until(s, dep, "aborted")
    return "POST", f"/api/v1/deployments/{dep}/retry", None


async def rollback(s: System) -> Request:
    await until(s, (await deploy(s, "v1"))["id"], "succeeded")
    second = (await deploy(s, "v2"))["id"]
    await until(s, second, "succeeded")
    return "POST", f"/api/v1/deployments/{second}/rollback", None


async def start_workflow(s: System) -> Request:
    return "POST", "/api/v1/orchestration/workflows", {"type": "component-health-check"}


async def cancel_workflow(s: System) -> Request:
    started = await s.start(input={"rounds": 100, "interval_seconds": 30})
    return "DELETE", f"/api/v1/orchestration/workflows/{started.json()['id']}", None


SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {
    ("POST", "/api/v1/apikeys"): create_key,
    ("DELETE", "/api/v1/apikeys/{key_ref}"): revoke_key,
    ("POST", "/api/v1/components"): create_component,
    ("PUT", "/api/v1/components/{component_id}"): replace_component,
    ("DELETE", "/api/v1/components/{component_id}"): delete_component,
    ("DELETE", "/api/v1/components/{component_id}/environments/{environment}"): retire_component,
    ("POST", "/api/v1/deployments"): create_deployment,
    ("PUT", "/api/v1/deployments/{deployment_id}"): set_desired,
    ("POST", "/api/v1/deployments/{deployment_id}/{action}"): act,
    ("POST", "/api/v1/deployments/{deployment_id}/retry"): retry,
    ("POST", "/api/v1/deployments/{deployment_id}/rollback"): rollback,
    ("POST", "/api/v1/orchestration/workflows"): start_workflow,
    ("DELETE", "/api/v1/orchestration/workflows/{workflow_id}"): cancel_workflow,
    **audit_scenarios_configuration.SCENARIOS,
    **audit_scenarios_policies.SCENARIOS,
    **audit_scenarios_schedules.SCENARIOS,
    **audit_scenarios_events.SCENARIOS,
    **audit_scenarios_notifications.SCENARIOS,
    **audit_scenarios_apikeys.SCENARIOS,
    **audit_scenarios_releases.SCENARIOS,
    **audit_scenarios_pipelines.SCENARIOS,
    **audit_scenarios_line_stops.SCENARIOS,
}


def test_every_mutating_route_has_a_scenario() -> None:
    assert mutating_routes() == set(SCENARIOS)


async def events(system: System) -> list[dict[str, Any]]:
    resp = await system.http.get("/api/v1/audit?limit=1000", headers=system.auth())
    assert resp.status_code == 200
    return list(resp.json())


@pytest.mark.parametrize("route", sorted(SCENARIOS), ids=lambda r: f"{r[0]} {r[1]}")
async def test_each_mutating_route_leaves_exactly_one_audit_event(
    make_system: Callable[..., Any], openbao: OpenBaoServer, route: tuple[str, str]
) -> None:
    system: System = await make_system(noop=True, vault_url=openbao.url, vault_token=openbao.token)
    created = await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    assert created.status_code == 201
    method, url, body = await SCENARIOS[route](system)
    before = await events(system)
    resp: httpx.Response = await system.http.request(method, url, json=body, headers=system.auth())
    assert resp.status_code < 300, resp.text
    new = (await events(system))[: -len(before) or None]
    assert len(new) == 1, new
    assert new[0]["request_id"] == resp.headers["x-request-id"]
    assert new[0]["actor"] == "apikey:admin"
    # ... linked into the hash chain, which still verifies (docs/audit.md).
    assert new[0]["prev_hash"] == before[0]["hash"] and new[0]["id"] == before[0]["id"] + 1
    chain = await system.http.get("/api/v1/audit/verify", headers=system.auth())
    assert chain.json()["intact"], chain.text


async def test_a_refused_change_leaves_no_audit_event(system: System) -> None:
    await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    before = await events(system)
    again = await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    assert again.status_code == 409
    assert await events(system) == before
