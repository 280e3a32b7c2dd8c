"""How deployment and retire requests are named and refused, through both APIs.

No worker runs here: a started deployment or retire stays running (and starts nothing) until
the fixture terminates it, which is all these tests need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import update

from core.db.engine import make_engine, sessions
from core.db.tables import ComponentRow
from tests.integration.system import System
from tests.integration.test_components_api import DEMO

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

WORKFLOWS = "/api/v1/orchestration/workflows"
DEPLOY = {"component": "demo", "environment": "dev", "version": "v1"}
# A component id that is also a valid component name, as a third of uuid4s are.
LETTER_ID = "c0ffee00-0000-4000-8000-000000000001"


@pytest.fixture
async def idle(make_system: Callable[..., Any]) -> System:
    system: System = await make_system(worker=False)
    created = await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    assert created.status_code == 201, created.text
    return system


async def test_deploying_by_id_while_a_deployment_by_name_runs_is_409(idle: System) -> None:
    engine = make_engine(idle.settings)
    async with sessions(engine)() as session:
        await session.execute(
            update(ComponentRow).where(ComponentRow.name == "demo").values(id=LETTER_ID)
        )
        await session.commit()
    await engine.dispose()
    by_name = await idle.http.post("/api/v1/deployments", json=DEPLOY, headers=idle.auth())
    assert by_name.status_code == 202, by_name.text
    by_id = await idle.http.post(
        "/api/v1/deployments", json={**DEPLOY, "component": LETTER_ID}, headers=idle.auth()
    )
    assert by_id.status_code == 409, by_id.text
    assert by_name.json()["id"] in by_id.json()["error"]["message"]
    listed = await idle.http.get("/api/v1/deployments", headers=idle.auth())
    assert [(d["component"], d["id"]) for d in listed.json()["items"]] == [
        ("demo", by_name.json()["id"])
    ]


@pytest.mark.parametrize("workflow_id", ["deploy:demo:prod", "retire:demo:dev", "r2c:anything"])
async def test_reserved_workflow_ids_are_refused(idle: System, workflow_id: str) -> None:
    resp = await idle.start(id=workflow_id, input={"rounds": 1})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["fields"] == [{"field": "body.id", "message": "reserved prefix"}]
    assert "deploy:" in resp.json()["error"]["hint"]
    # Nothing squats the deployment's id: the target can still be deployed.
    prod = {**DEPLOY, "environment": "prod"}
    deployed = await idle.http.post("/api/v1/deployments", json=prod, headers=idle.auth())
    assert deployed.status_code == 202, deployed.text


async def test_an_orchestration_deployment_uses_the_given_id_and_repeats_safely(
    idle: System,
) -> None:
    first = await idle.start("deployment", id="release-42", input=DEPLOY)
    assert first.status_code == 202, first.text
    assert (first.json()["id"], first.json()["deployment_id"]) == ("deploy:demo:dev", "release-42")
    repeat = await idle.start("deployment", id="release-42", input=DEPLOY)
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["created"] is False
    assert repeat.json()["run_id"] == first.json()["run_id"]
    other = await idle.start("deployment", id="release-42", input={**DEPLOY, "version": "v2"})
    assert other.status_code == 409, other.text
    assert "different request" in other.json()["error"]["message"]
    stored = await idle.http.get("/api/v1/deployments/release-42", headers=idle.auth())
    assert stored.status_code == 200 and stored.json()["version"] == "v1"


async def test_an_orchestration_deployment_honours_the_idempotency_key(idle: System) -> None:
    headers = {**idle.auth(), "Idempotency-Key": "retry-safe-1"}
    payload = {"type": "deployment", "input": {**DEPLOY, "environment": "staging"}}
    first = await idle.http.post(WORKFLOWS, json=payload, headers=headers)
    again = await idle.http.post(WORKFLOWS, json=payload, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["deployment_id"] == first.json()["deployment_id"]
    listed = await idle.http.get("/api/v1/deployments", headers=idle.auth())
    assert listed.json()["total"] == 1
    # The same key through POST /api/v1/deployments names the same deployment.
    direct = await idle.http.post("/api/v1/deployments", json=payload["input"], headers=headers)
    assert direct.status_code == 200, direct.text
    assert direct.json()["id"] == first.json()["deployment_id"]


async def test_retire_through_the_orchestration_api_follows_the_components_rules(
    idle: System,
) -> None:
    operator = await idle.key("operator")
    retire = {"type": "component-retire", "input": {"component": "demo", "environment": "dev"}}
    denied = await idle.http.post(WORKFLOWS, json=retire, headers=idle.auth(operator))
    assert denied.status_code == 403, denied.text
    assert "admin" in denied.json()["error"]["message"]

    deployed = await idle.http.post("/api/v1/deployments", json=DEPLOY, headers=idle.auth())
    assert deployed.status_code == 202
    busy = await idle.http.post(WORKFLOWS, json=retire, headers=idle.auth())
    assert busy.status_code == 409, busy.text
    assert deployed.json()["id"] in busy.json()["error"]["message"]

    elsewhere = {"type": "component-retire", "input": {"component": "demo", "environment": "qa"}}
    started = await idle.http.post(WORKFLOWS, json=elsewhere, headers=idle.auth())
    assert started.status_code == 202, started.text
    assert started.json()["id"] == "retire:demo:qa"
    wrong_id = await idle.http.post(
        WORKFLOWS, json={**elsewhere, "id": "my-retire"}, headers=idle.auth()
    )
    assert wrong_id.status_code == 422
    audit = await idle.http.get("/api/v1/audit", headers=idle.auth())
    retired = [e for e in audit.json() if e["action"] == "component.retired"]
    assert [(e["target"], e["detail"]["environment"]) for e in retired] == [("demo", "qa")]


async def test_an_input_over_temporals_payload_limit_is_413(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(worker=False, max_body_bytes=8 * 1024 * 1024)
    await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    # 100 variables of 30,000 characters: valid, and 3 MB, over Temporal's 2 MB per payload.
    env = {f"VALUE_{i}": "x" * 30_000 for i in range(100)}
    resp = await system.http.post(
        "/api/v1/deployments", json={**DEPLOY, "env": env}, headers=system.auth()
    )
    assert resp.status_code == 413, resp.text[:500]
    assert "2 MB" in resp.json()["error"]["hint"]
    listed = await system.http.get("/api/v1/deployments", headers=system.auth())
    assert listed.json()["total"] == 0
