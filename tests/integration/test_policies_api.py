"""Environment policies through the real API, store and worker: versioned writes by admins,
refusals that name the policy and the rule, freezes and their audited override, and required
approvals that become gates the deployment waits for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.services.policies import enforce_config_change
from core.db.engine import make_engine, sessions
from core.errors import PermissionDeniedError
from core.ids import deployment_workflow_id
from core.models.apikeys import Principal, Role
from tests.integration.deploying import FINAL, until
from tests.integration.system import System
from tests.integration.test_components_api import DEMO

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

PROD = "/api/v1/policies/prod"
CANARY = {"type": "canary", "steps": [{"set_weight": 20}, {"set_weight": 100}]}


@pytest.fixture
async def prod(make_system: Callable[..., Any]) -> System:
    """A system whose worker completes deployments at once (no-op provider), with the demo
    component registered and already running v1 in prod."""
    system: System = await make_system(noop=True)
    created = await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    assert created.status_code == 201, created.text
    first = await deploy(system, "v1")
    assert first.status_code == 202, first.text
    await until(system, first.json()["id"], "succeeded")
    return system


async def put_policy(
    system: System, policy: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return await system.http.put(PROD, json=policy, headers=system.auth(key))


async def deploy(
    system: System,
    version: str,
    strategy: dict[str, Any] | None = None,
    key: str | None = None,
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"component": "demo", "environment": "prod", "version": version}
    body.update(extra)
    if strategy is not None:
        body["strategy"] = strategy
    return await system.http.post("/api/v1/deployments", json=body, headers=system.auth(key))


async def audit_events(system: System) -> list[dict[str, Any]]:
    resp = await system.http.get("/api/v1/audit?limit=1000", headers=system.auth())
    assert resp.status_code == 200, resp.text
    return list(resp.json())


def refused(resp: httpx.Response, rule: str, label: str = "prod v1") -> dict[str, Any]:
    """The 403 body of a refusal, checked to name the policy and the rule."""
    assert resp.status_code == 403, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert label in error["message"] and rule in error["message"], error
    assert error["details"]["policy"] == label and error["details"]["rule"] == rule
    return error


# ----------------------------------------------------------------------------- the resource


async def test_policies_are_versioned_written_by_admins_and_read_by_viewers(prod: System) -> None:
    viewer, operator = await prod.key("viewer", "eve"), await prod.key("operator", "ops")
    assert (await put_policy(prod, {"protected": True}, operator)).status_code == 403
    first = await put_policy(prod, {"protected": True})
    assert first.status_code == 200, first.text
    assert (first.json()["version"], first.json()["updated_by"]) == (1, "apikey:admin")
    second = await put_policy(prod, {"allowed_strategies": ["canary"]})
    assert second.json()["version"] == 2 and second.json()["protected"] is False
    read = await prod.http.get(PROD, headers=prod.auth(viewer))
    assert read.status_code == 200 and read.json()["allowed_strategies"] == ["canary"]
    deleted = await prod.http.delete(PROD, headers=prod.auth())
    assert deleted.status_code == 204
    assert (await prod.http.get(PROD, headers=prod.auth(viewer))).status_code == 404
    versions = await prod.http.get(f"{PROD}/versions", headers=prod.auth(viewer))
    assert versions.status_code == 200, versions.text
    page = versions.json()
    assert [(v["version"], v["deleted"]) for v in page["items"]] == [
        (3, True),
        (2, False),
        (1, False),
    ]
    assert page["items"][2]["spec"]["protected"] is True
    assert all(v["created_by"] == "apikey:admin" for v in page["items"])
    again = await put_policy(prod, {})
    assert again.json()["version"] == 4  # numbering continues after a deletion
    actions = [e["action"] for e in await audit_events(prod) if e["target"] == "prod"]
    assert actions.count("policy.updated") == 3 and actions.count("policy.deleted") == 1


async def test_a_rule_that_cannot_be_used_is_refused_naming_it_and_nothing_is_written(
    prod: System,
) -> None:
    policy = {
        "rules": [
            {"name": "fine", "expression": "true"},
            {"name": "broken", "expression": "request.kind =="},
            {"name": "unknown", "expression": "nobody.knows"},
        ]
    }
    resp = await put_policy(prod, policy)
    assert resp.status_code == 422, resp.text
    fields = {f["field"]: f["message"] for f in resp.json()["error"]["fields"]}
    assert set(fields) == {"body.rules[1].expression", "body.rules[2].expression"}
    assert "'broken'" in fields["body.rules[1].expression"]
    assert "Syntax error" in fields["body.rules[1].expression"]
    assert (await prod.http.get(PROD, headers=prod.auth())).status_code == 404


async def test_concurrent_writers_with_the_same_etag_get_one_200_and_412s(
    prod: System,
) -> None:
    first = await put_policy(prod, {"protected": True})
    tag = first.headers["etag"]
    assert (await prod.http.get(PROD, headers=prod.auth())).headers["etag"] == tag

    async def write(strategies: list[str]) -> httpx.Response:
        headers = {**prod.auth(), "If-Match": tag}
        body = {"allowed_strategies": strategies}
        return await prod.http.put(PROD, json=body, headers=headers)

    choices = [["canary"], ["rolling"], ["blue_green"], ["canary", "rolling"]]
    answers = await asyncio.gather(*(write(c) for c in choices))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 412, 412, 412], [a.text for a in answers]
    (won,) = [a for a in answers if a.status_code == 200]
    current = await prod.http.get(PROD, headers=prod.auth())
    assert current.json() == won.json() and current.json()["version"] == 2
    stale = await prod.http.delete(PROD, headers={**prod.auth(), "If-Match": tag})
    assert stale.status_code == 412
    assert (await prod.http.get(PROD, headers=prod.auth())).status_code == 200


@pytest.mark.parametrize(
    "bad",
    [
        {"allowed_strategies": ["teleport"]},
        {"required_approval": {"approvers": 6}},
        {"max_canary_step_weight": 0},
        {"freeze_windows": [{"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}]},
        {"weekly_freeze_windows": [{"days": ["someday"], "start": "18:00", "end": "06:00"}]},
        {"rules": [{"name": "Bad Name!", "expression": "true"}]},
        {"unknown_field": True},
    ],
)
async def test_an_invalid_policy_is_a_422(prod: System, bad: dict[str, Any]) -> None:
    resp = await put_policy(prod, bad)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["fields"]


# ----------------------------------------------------------------------------- refusals


async def test_a_forbidden_strategy_is_refused_naming_the_policy_and_rule(prod: System) -> None:
    assert (await put_policy(prod, {"allowed_strategies": ["canary"]})).status_code == 200
    error = refused(await deploy(prod, "v2", {"type": "rolling"}), "allowed_strategies")
    assert "rolling" in error["message"]
    listed = await prod.http.get("/api/v1/deployments?environment=prod", headers=prod.auth())
    assert listed.json()["total"] == 1  # only v1: nothing was recorded
    assert (await deploy(prod, "v2", CANARY)).status_code == 202


async def test_the_orchestration_api_is_held_to_the_same_policy(prod: System) -> None:
    assert (await put_policy(prod, {"allowed_strategies": ["canary"]})).status_code == 200
    body = {"component": "demo", "environment": "prod", "version": "v2"}
    started = await prod.start("deployment", input={**body, "strategy": {"type": "rolling"}})
    refused(started, "allowed_strategies")
    allowed = await prod.start("deployment", input={**body, "strategy": CANARY})
    assert allowed.status_code in (200, 201, 202), allowed.text


async def test_a_canary_step_over_the_maximum_weight_is_refused(prod: System) -> None:
    assert (await put_policy(prod, {"max_canary_step_weight": 25})).status_code == 200
    steep = {"type": "canary", "steps": [{"set_weight": 50}, {"set_weight": 100}]}
    error = refused(await deploy(prod, "v2", steep), "max_canary_step_weight")
    assert "50%" in error["message"]
    assert (await deploy(prod, "v2", CANARY)).status_code == 202


async def test_a_deployment_without_analysis_is_refused_where_analysis_is_required(
    prod: System,
) -> None:
    assert (await put_policy(prod, {"require_analysis": True})).status_code == 200
    refused(await deploy(prod, "v2", CANARY), "require_analysis")


async def test_a_cel_rule_refuses_with_its_name_and_message(prod: System) -> None:
    rule = {
        "name": "admins-deploy",
        "expression": 'request.kind != "deployment" || request.role == "admin"',
        "message": "only admins deploy to prod",
    }
    assert (await put_policy(prod, {"rules": [rule]})).status_code == 200
    operator = await prod.key("operator", "ops")
    error = refused(await deploy(prod, "v2", CANARY, operator), "rules.admins-deploy")
    assert "only admins deploy to prod" in error["message"]
    assert (await deploy(prod, "v2", CANARY)).status_code == 202


async def test_a_freeze_refuses_deployments_and_an_admin_override_is_audited(
    prod: System,
) -> None:
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
        "reason": "year-end",
    }
    assert (await put_policy(prod, {"freeze_windows": [window]})).status_code == 200
    operator = await prod.key("operator", "ops")
    error = refused(await deploy(prod, "v2", CANARY, operator), "freeze_windows[0]")
    assert "year-end" in error["message"]
    not_admin = await deploy(prod, "v2", CANARY, operator, freeze_override=True)
    assert "admin role" in refused(not_admin, "freeze_windows[0]")["hint"]
    overridden = await deploy(prod, "v2", CANARY, freeze_override=True)
    assert overridden.status_code == 202, overridden.text
    dep = overridden.json()["id"]
    (event,) = [e for e in await audit_events(prod) if e["target"] == dep]
    assert event["action"] == "deployment.created"
    assert event["detail"]["policy"] == "prod v1"
    assert event["detail"]["freeze_overridden"] == "freeze_windows[0]"
    assert (await until(prod, dep, *FINAL))["state"] == "succeeded"


async def test_a_rollback_repairs_a_frozen_environment(prod: System) -> None:
    second = await deploy(prod, "v2", CANARY)
    assert (await until(prod, second.json()["id"], *FINAL))["state"] == "succeeded"
    now = datetime.now(UTC)
    window = {"start": now.isoformat(), "end": (now + timedelta(hours=1)).isoformat()}
    policy = {"freeze_windows": [window], "allowed_strategies": ["canary"]}
    assert (await put_policy(prod, policy)).status_code == 200
    back = await prod.http.post(
        f"/api/v1/deployments/{second.json()['id']}/rollback", headers=prod.auth()
    )
    assert back.status_code == 202, back.text
    assert (await until(prod, back.json()["id"], *FINAL))["state"] == "succeeded"


# ----------------------------------------------------------------------------- gates


async def approve(system: System, deployment_id: str, key: str | None = None) -> httpx.Response:
    return await system.http.post(
        f"/api/v1/deployments/{deployment_id}/approve",
        json={"reason": "checked"},
        headers=system.auth(key),
    )


async def test_a_required_approval_is_a_gate_that_needs_two_different_approvers(
    prod: System,
) -> None:
    need = {"roles": ["operator"], "approvers": 2, "timeout": "1h"}
    assert (await put_policy(prod, {"required_approval": need})).status_code == 200
    operator = await prod.key("operator", "ops")
    started = await deploy(prod, "v2", CANARY)
    assert started.status_code == 202, started.text
    dep = started.json()["id"]
    waiting = await until(prod, dep, "paused")
    status = waiting["status"]
    assert status["pause_reason"] == "Approval" and status["step"] == 2 and status["steps"] == 3
    assert "2 different people" in status["phase"]
    # The gate is in the plan the Temporal UI shows, too.
    workflow = prod.temporal.get_workflow_handle(deployment_workflow_id("demo", "prod"))
    details = await (await workflow.describe()).static_details()
    assert "2. approval by 2 different operator (required by policy prod v1)" in (details or "")
    assert (await approve(prod, dep)).status_code == 200
    twice = await approve(prod, dep)
    assert twice.status_code == 409 and "already approved" in twice.json()["error"]["message"]
    still = await until(prod, dep, "paused")
    assert [a["by"] for a in still["status"]["approvals"]] == ["apikey:admin"]
    assert (await approve(prod, dep, operator)).status_code == 200
    done = await until(prod, dep, *FINAL)
    assert done["state"] == "succeeded", done
    assert {a["by"] for a in done["status"]["approvals"]} == {"apikey:admin", "apikey:ops"}


async def test_a_required_approval_holds_a_blue_green_before_its_switch(prod: System) -> None:
    assert (await put_policy(prod, {"required_approval": {"roles": ["admin"]}})).status_code == 200
    started = await deploy(prod, "v2", {"type": "blue_green", "scale_down_delay_seconds": 0})
    assert started.status_code == 202, started.text
    dep = started.json()["id"]
    waiting = await until(prod, dep, "paused")
    assert waiting["status"]["pause_reason"] == "Approval"
    assert waiting["status"]["weights"].get(waiting["status"]["new_slot"] or "", 0) == 0
    assert (await approve(prod, dep)).status_code == 200
    assert (await until(prod, dep, *FINAL))["state"] == "succeeded"


async def test_a_first_deployment_waits_for_the_policy_approval_too(prod: System) -> None:
    # Without a policy a first deployment skips its steps; a policy's approval still holds.
    policy = {"required_approval": {"roles": ["admin"]}}
    resp = await prod.http.put("/api/v1/policies/staging", json=policy, headers=prod.auth())
    assert resp.status_code == 200, resp.text
    body = {"component": "demo", "environment": "staging", "version": "v1", "strategy": CANARY}
    started = await prod.http.post("/api/v1/deployments", json=body, headers=prod.auth())
    assert started.status_code == 202, started.text
    dep = started.json()["id"]
    waiting = await until(prod, dep, "paused")
    assert waiting["status"]["pause_reason"] == "Approval" and not waiting["status"]["weights"]
    assert (await approve(prod, dep)).status_code == 200
    assert (await until(prod, dep, *FINAL))["state"] == "succeeded"


async def test_a_retried_deployment_gets_no_second_gate(prod: System) -> None:
    assert (await put_policy(prod, {"required_approval": {"timeout": "1s"}})).status_code == 200
    started = await deploy(prod, "v2", CANARY)
    dep = started.json()["id"]
    assert (await until(prod, dep, *FINAL))["state"] == "aborted"  # nobody approved in 1s
    retried = await prod.http.post(f"/api/v1/deployments/{dep}/retry", headers=prod.auth())
    assert retried.status_code == 202, retried.text
    waiting = await until(prod, retried.json()["id"], "paused", *FINAL)
    assert waiting["status"]["steps"] == 3  # 20%, the approval, 100%


# ----------------------------------------------------------------------------- configuration


OPERATOR = Principal(key_id="k1", name="ops", role=Role.OPERATOR)
ADMIN = Principal(key_id="k2", name="root", role=Role.ADMIN)


@asynccontextmanager
async def store_session(system: System) -> AsyncIterator[AsyncSession]:
    """A session on the system's own store, for calling a service directly."""
    engine = make_engine(system.settings)
    try:
        async with sessions(engine)() as session:
            yield session
    finally:
        await engine.dispose()


async def test_enforce_config_change_refuses_an_operator_on_a_protected_environment(
    prod: System,
) -> None:
    now = datetime.now(UTC)
    frozen = {"start": now.isoformat(), "end": (now + timedelta(hours=1)).isoformat()}
    assert (await put_policy(prod, {"protected": True})).status_code == 200
    staging = {"freeze_windows": [frozen]}
    resp = await prod.http.put("/api/v1/policies/staging", json=staging, headers=prod.auth())
    assert resp.status_code == 200
    async with store_session(prod) as session:
        with pytest.raises(PermissionDeniedError) as err:
            await enforce_config_change(session, OPERATOR, "prod", key="db.url")
        assert err.value.details["rule"] == "protected"
        assert err.value.details["policy"] == "prod v1"
        await enforce_config_change(session, ADMIN, "prod", key="db.url")
        await enforce_config_change(session, OPERATOR, "dev", key="db.url")  # no policy
        # A global entry reaches every environment: staging's freeze refuses it.
        with pytest.raises(PermissionDeniedError) as frozen_err:
            await enforce_config_change(session, ADMIN, None, key="db.url")
        assert frozen_err.value.details["policy"] == "staging v1"
        assert frozen_err.value.details["rule"] == "freeze_windows[0]"
        await enforce_config_change(session, ADMIN, None, key="db.url", override=True)
        await session.commit()  # the override's audit event goes with the change
    (event,) = [e for e in await audit_events(prod) if e["action"] == "policy.overridden"]
    assert event["actor"] == "apikey:root" and event["target"] == "db.url"
    assert event["detail"]["policies"] == ["staging v1: freeze_windows[0]"]


async def test_enforce_config_change_applies_the_need_for_approval_and_cel_rules(
    prod: System,
) -> None:
    rule = {
        "name": "db-keys-for-admins",
        "expression": 'request.kind != "config" || !request.key.startsWith("db.") '
        '|| request.role == "admin"',
        "message": "db.* keys are for admins",
    }
    policy = {"config_changes_need_approval": True, "rules": [rule]}
    assert (await put_policy(prod, policy)).status_code == 200
    async with store_session(prod) as session:
        with pytest.raises(PermissionDeniedError) as need:
            await enforce_config_change(session, ADMIN, "prod", key="app.mode")
        assert need.value.details["rule"] == "config_changes_need_approval"
        with pytest.raises(PermissionDeniedError) as op_override:
            await enforce_config_change(session, OPERATOR, "prod", key="x", override=True)
        assert op_override.value.details["rule"] == "config_changes_need_approval"
        await enforce_config_change(session, ADMIN, "prod", key="db.url", override=True)
        # An admin's override passes the need for approval, never a rule.
        put_back = {"rules": [rule]}
        assert (await put_policy(prod, put_back)).status_code == 200
        with pytest.raises(PermissionDeniedError) as by_rule:
            await enforce_config_change(session, OPERATOR, "prod", key="db.url")
        assert by_rule.value.details["rule"] == "rules.db-keys-for-admins"
        assert "db.* keys are for admins" in by_rule.value.message
        await enforce_config_change(session, OPERATOR, "prod", key="app.mode")
