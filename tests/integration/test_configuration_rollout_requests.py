"""What `roll_out` and `rotate` answer, on a worker whose provider starts nothing (deployments
complete at once) and a real OpenBao: which targets a scope reaches, a busy target listed with
its 409, a policy's approval gate on a roll-out, and the rotation's refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.deploying import FINAL, deploy, until
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System
from tests.integration.test_components_api import DEMO

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

URL = "/api/v1/configuration"
ROLLING = {"strategy": {"type": "rolling"}}


@pytest.fixture
async def running(make_system: Callable[..., Any], openbao: OpenBaoServer) -> System:
    """demo runs v1 in dev and in prod, other runs v3 in dev."""
    system: System = await make_system(noop=True, vault_url=openbao.url, vault_token=openbao.token)
    for spec in (DEMO, {**DEMO, "name": "other"}):
        resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
        assert resp.status_code == 201, resp.text
    for component, environment, version in (
        ("demo", "dev", "v1"),
        ("demo", "prod", "v1"),
        ("other", "dev", "v3"),
    ):
        started = await deploy(system, version, component=component, environment=environment)
        assert (await until(system, started["id"], *FINAL))["state"] == "succeeded"
    return system


async def put(system: System, key: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await system.http.put(f"{URL}/{key}", json=body, headers=system.auth())
    assert resp.status_code in (200, 201), resp.text
    return dict(resp.json())


def targets(answer: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r["component"], r["environment"]) for r in answer["rollouts"]}


@pytest.mark.parametrize(
    ("scope", "reached"),
    [
        ({"component": "demo", "environment": "dev"}, {("demo", "dev")}),
        ({"component": "demo"}, {("demo", "dev"), ("demo", "prod")}),
        ({"environment": "dev"}, {("demo", "dev"), ("other", "dev")}),
        ({}, {("demo", "dev"), ("demo", "prod"), ("other", "dev")}),
    ],
    ids=["component+environment", "component", "environment", "global"],
)
async def test_a_rolled_out_change_deploys_every_running_target_its_scope_reaches(
    running: System, scope: dict[str, str], reached: set[tuple[str, str]]
) -> None:
    answer = await put(running, "feature.x", {"value": True, "scope": scope, "roll_out": ROLLING})
    assert targets(answer) == reached
    for rollout in answer["rollouts"]:
        assert rollout["status"] == 202 and rollout["error"] is None, rollout
        done = await until(running, rollout["deployment_id"], *FINAL)
        assert done["state"] == "succeeded", done
        # Each keeps the version it runs, and takes the change's revision.
        assert done["version"] == ("v3" if rollout["component"] == "other" else "v1")
        assert done["config_revision"] == answer["revision"]


async def test_a_change_without_roll_out_starts_nothing(running: System) -> None:
    answer = await put(running, "feature.x", {"value": 1, "scope": {"component": "demo"}})
    assert answer["rollouts"] == []


async def test_a_target_already_being_deployed_is_listed_with_its_409(running: System) -> None:
    paused = {"type": "canary", "steps": [{"set_weight": 50}, {"pause": {}}]}
    busy = await deploy(running, "v2", strategy=paused)
    await until(running, busy["id"], "paused")
    answer = await put(
        running, "feature.x", {"value": 2, "scope": {"component": "demo"}, "roll_out": ROLLING}
    )
    by_target = {(r["component"], r["environment"]): r for r in answer["rollouts"]}
    refused = by_target[("demo", "dev")]
    assert refused["status"] == 409 and refused["deployment_id"] is None, refused
    assert busy["id"] in refused["error"], refused
    started = by_target[("demo", "prod")]
    assert (await until(running, started["deployment_id"], *FINAL))["state"] == "succeeded"


async def test_where_config_changes_need_approval_a_roll_out_waits_for_one(
    running: System,
) -> None:
    policy = {"config_changes_need_approval": True}
    resp = await running.http.put("/api/v1/policies/prod", json=policy, headers=running.auth())
    assert resp.status_code == 200, resp.text
    scope = {"component": "demo", "environment": "prod"}
    direct = await running.http.put(
        f"{URL}/feature.x", json={"value": 1, "scope": scope}, headers=running.auth()
    )
    assert direct.status_code == 403, direct.text
    assert "config_changes_need_approval" in direct.json()["error"]["message"]

    answer = await put(running, "feature.x", {"value": 1, "scope": scope, "roll_out": ROLLING})
    (rollout,) = answer["rollouts"]
    waiting = await until(running, rollout["deployment_id"], "paused")
    assert waiting["status"]["pause_reason"] == "Approval", waiting["status"]
    resp = await running.http.post(
        f"/api/v1/deployments/{rollout['deployment_id']}/approve",
        json={"reason": "checked"},
        headers=running.auth(),
    )
    assert resp.status_code == 200, resp.text
    done = await until(running, rollout["deployment_id"], *FINAL)
    assert done["state"] == "succeeded" and done["config_revision"] == answer["revision"]


async def test_a_rotation_writes_a_new_secret_version_and_never_shows_the_value(
    running: System,
) -> None:
    scope = {"component": "demo"}
    first = await put(running, "db.password", {"value": "first-pw-1234", "scope": scope,
                                               "secret": True})  # fmt: skip
    resp = await running.http.post(
        f"{URL}/db.password/rotate",
        json={"scope": scope, "generate": {"length": 16}},
        headers=running.auth(),
    )
    assert resp.status_code == 200, resp.text
    rotated = resp.json()
    assert rotated["value"] == "<secret v2>" and rotated["revision"] > first["revision"]
    assert rotated["rollouts"] == [] and "ETag" in resp.headers
    events = await running.http.get("/api/v1/audit?limit=5", headers=running.auth())
    assert events.json()[0]["action"] == "configuration.rotated"


@pytest.mark.parametrize(
    ("key", "body", "status", "says"),
    [
        ("feature.plain", {"value": "new"}, 422, "not a secret"),
        ("db.missing", {"value": "new"}, 404, "no entry"),
        ("feature.plain", {}, 422, "exactly one"),
        ("feature.plain", {"value": "a", "generate": {"length": 16}}, 422, "exactly one"),
        ("feature.plain", {"generate": {"length": 8}}, 422, "greater than or equal to 16"),
        ("feature.plain", {"generate": {"length": 257}}, 422, "less than or equal to 256"),
    ],
)
async def test_a_rotation_that_cannot_be_made_says_why(
    running: System, key: str, body: dict[str, Any], status: int, says: str
) -> None:
    await put(running, "feature.plain", {"value": "old", "scope": {"component": "demo"}})
    resp = await running.http.post(
        f"{URL}/{key}/rotate",
        json={"scope": {"component": "demo"}, **body},
        headers=running.auth(),
    )
    assert resp.status_code == status, resp.text
    assert says in resp.text, resp.text


async def test_a_deployment_runs_the_revision_it_names_and_latest_the_newest(
    running: System,
) -> None:
    first = await put(running, "feature.x", {"value": 1, "scope": {"component": "demo"}})
    await put(running, "feature.x", {"value": 2, "scope": {"component": "demo"}})
    pinned = await deploy(running, "v5", config=first["revision"])
    assert pinned["config_revision"] == first["revision"]
    latest = await deploy(running, "v5", environment="prod")
    assert latest["config_revision"] == first["revision"] + 1


async def test_a_retired_target_gets_no_roll_out_until_it_is_deployed_again(
    running: System,
) -> None:
    resp = await running.http.delete(
        "/api/v1/components/demo/environments/prod", headers=running.auth()
    )
    assert resp.status_code == 200, resp.text
    scope = {"component": "demo"}
    answer = await put(running, "feature.x", {"value": 1, "scope": scope, "roll_out": ROLLING})
    assert targets(answer) == {("demo", "dev")}
    for rollout in answer["rollouts"]:
        await until(running, rollout["deployment_id"], *FINAL)
    again = await deploy(running, "v1", environment="prod")
    assert (await until(running, again["id"], *FINAL))["state"] == "succeeded"
    answer = await put(running, "feature.x", {"value": 2, "scope": scope, "roll_out": ROLLING})
    assert targets(answer) == {("demo", "dev"), ("demo", "prod")}
