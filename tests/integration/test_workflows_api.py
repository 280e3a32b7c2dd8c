"""Starting, inspecting, listing and cancelling workflows through the REST API."""

from __future__ import annotations

import base64
import uuid

from tests.integration.system import System
from tests.support import wait_for


async def test_start_runs_to_completion_with_result(system: System) -> None:
    resp = await system.start()
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["created"] is True and body["type"] == "component-health-check"
    assert body["links"]["temporal_ui"].endswith(f"/workflows/{body['id']}/{body['run_id']}")
    done = await system.until_status(body["id"], "completed")
    assert done["result"]["rounds_completed"] == 1
    assert done["initiator"] == "apikey:admin"
    assert done["close_time"] is not None


async def test_invalid_input_is_422_naming_each_field(system: System) -> None:
    resp = await system.start(input={"rounds": "many", "colour": "red"})
    assert resp.status_code == 422
    fields = {f["field"] for f in resp.json()["error"]["fields"]}
    assert fields == {"input.rounds", "input.colour"}


async def test_unknown_type_is_422_listing_known_types(system: System) -> None:
    resp = await system.start("no-such-workflow")
    assert resp.status_code == 422
    assert "component-health-check" in resp.json()["error"]["hint"]


async def test_same_id_returns_the_existing_workflow(system: System) -> None:
    wf_id = f"check-{uuid.uuid4().hex[:8]}"
    first = await system.start(id=wf_id, input={"rounds": 3, "interval_seconds": 60})
    second = await system.start(id=wf_id, input={"rounds": 3, "interval_seconds": 60})
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["created"] is False
    assert second.json()["run_id"] == first.json()["run_id"]
    different = await system.start(id=wf_id, input={"rounds": 4, "interval_seconds": 60})
    assert different.status_code == 409
    await system.http.delete(f"/api/v1/orchestration/workflows/{wf_id}", headers=system.auth())


async def test_idempotency_key_never_starts_a_second_workflow(system: System) -> None:
    headers = {**system.auth(), "Idempotency-Key": uuid.uuid4().hex}
    payload = {"type": "component-health-check", "input": {}}
    first = await system.http.post("/api/v1/orchestration/workflows", json=payload, headers=headers)
    await system.until_status(first.json()["id"], "completed")
    # Even after it closed, the same key answers with the same workflow.
    again = await system.http.post("/api/v1/orchestration/workflows", json=payload, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "completed"
    runs = [e async for e in system.temporal.list_workflows(f"WorkflowId = '{first.json()['id']}'")]
    assert len(runs) == 1


async def test_progress_cancel_and_conflict(system: System) -> None:
    resp = await system.start(input={"rounds": 100, "interval_seconds": 30})
    wf_id = resp.json()["id"]
    running = await wait_for(
        lambda: system.get(wf_id),
        lambda d: d["progress"] is not None and d["progress"]["phase"] == "waiting",
        what="progress from the status query",
    )
    assert running["status"] == "running"
    assert running["progress"]["rounds"] == 100
    cancel = await system.http.delete(
        f"/api/v1/orchestration/workflows/{wf_id}?reason=test", headers=system.auth()
    )
    assert cancel.status_code == 202
    assert cancel.json()["action"] == "cancel_requested"
    closed = await system.until_status(wf_id, "cancelled")
    assert closed["failure"] is not None
    again = await system.http.delete(
        f"/api/v1/orchestration/workflows/{wf_id}", headers=system.auth()
    )
    assert again.status_code == 409
    assert "cancelled" in again.json()["error"]["message"]
    audit = await system.http.get("/api/v1/audit", headers=system.auth())
    actions = [(e["action"], e["target"]) for e in audit.json()]
    assert ("workflow.cancel_requested", wf_id) in actions


async def test_terminate_needs_admin(system: System) -> None:
    operator = await system.key("operator")
    wf_id = (await system.start(input={"rounds": 100, "interval_seconds": 30})).json()["id"]
    url = f"/api/v1/orchestration/workflows/{wf_id}?terminate=true"
    denied = await system.http.delete(url, headers=system.auth(operator))
    assert denied.status_code == 403
    done = await system.http.delete(url, headers=system.auth())
    assert done.status_code == 202 and done.json()["action"] == "terminated"
    assert (await system.until_status(wf_id, "terminated"))["status"] == "terminated"


async def test_unknown_workflow_is_404(system: System) -> None:
    resp = await system.http.get(
        "/api/v1/orchestration/workflows/does-not-exist", headers=system.auth()
    )
    assert resp.status_code == 404
    assert "does-not-exist" in resp.json()["error"]["message"]
    resp = await system.http.delete(
        "/api/v1/orchestration/workflows/does-not-exist", headers=system.auth()
    )
    assert resp.status_code == 404


async def test_list_filters_and_paginates(system: System) -> None:
    viewer = await system.key("viewer")
    ids = [(await system.start()).json()["id"] for _ in range(3)]
    for wf_id in ids:
        await system.until_status(wf_id, "completed")
    query = "type=component-health-check&status=completed&initiator=apikey:admin"
    # Visibility is eventually consistent: poll until all three are listed.
    await wait_for(
        lambda: _list_ids(system, viewer, query + "&page_size=100"),
        lambda found: set(ids) <= found,
        what="three workflows in the list",
    )
    first = await system.http.get(
        f"/api/v1/orchestration/workflows?{query}&page_size=2", headers=system.auth(viewer)
    )
    page = first.json()
    assert len(page["items"]) == 2 and page["next_page_token"]
    second = await system.http.get(
        f"/api/v1/orchestration/workflows?{query}&page_size=2&page_token={page['next_page_token']}",
        headers=system.auth(viewer),
    )
    assert second.status_code == 200
    seen = {i["id"] for i in page["items"]} | {i["id"] for i in second.json()["items"]}
    assert len(seen) >= 3
    bad = await system.http.get(
        "/api/v1/orchestration/workflows?initiator=x' OR '1'='1", headers=system.auth(viewer)
    )
    assert bad.status_code == 422
    none = await system.http.get(
        "/api/v1/orchestration/workflows?status=failed&initiator=nobody",
        headers=system.auth(viewer),
    )
    assert none.json()["items"] == []


async def _list_ids(system: System, key: str, query: str) -> set[str]:
    resp = await system.http.get(
        f"/api/v1/orchestration/workflows?{query}", headers=system.auth(key)
    )
    return {item["id"] for item in resp.json()["items"]}


async def test_workflow_types_describe_their_input(system: System) -> None:
    resp = await system.http.get("/api/v1/orchestration/workflow-types", headers=system.auth())
    types = {t["type"]: t for t in resp.json()}
    assert "rounds" in types["component-health-check"]["input_schema"]["properties"]


async def test_a_forged_page_token_is_400(system: System) -> None:
    for _ in range(3):
        await system.start()
    url = "/api/v1/orchestration/workflows?page_size=1&type=component-health-check"
    page = await wait_for(
        lambda: system.http.get(url, headers=system.auth()),
        lambda r: r.json()["next_page_token"] is not None,
        what="a second page",
    )
    token = page.json()["next_page_token"]
    forged = base64.urlsafe_b64encode(b"x" * 16 + b'{"LastRunID": "nope"}').decode()
    for query in (f"{url}&page_token={forged}", f"{url}&page_token=not-base64!!"):
        resp = await system.http.get(query, headers=system.auth())
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["type"] == "BadRequest"
        assert "next_page_token" in resp.json()["error"]["hint"]
    # A real token is bound to its filters.
    other = await system.http.get(
        f"/api/v1/orchestration/workflows?page_size=1&page_token={token}", headers=system.auth()
    )
    assert other.status_code == 400
    ok = await system.http.get(f"{url}&page_token={token}", headers=system.auth())
    assert ok.status_code == 200
