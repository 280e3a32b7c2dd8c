"""CloudEvents in, against the real system: structured and binary events start workflows
through routes (glob, data and CEL matches), a repeated event id starts nothing more, an event
that matches nothing is kept, bad events and routes that can never act are refused with a
hint, and a route steers a paused canary."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cli.processes import free_port
from tests.integration.system import System
from tests.integration.test_webhooks import component, deployments_of, route
from tests.support import wait_for

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

EVENTS = "/api/v1/events"
STRUCTURED = {"Content-Type": "application/cloudevents+json"}
HEALTH = {"workflow_type": "component-health-check", "input": {"rounds": 1}}


@pytest.fixture
async def api(make_system: Callable[..., Any]) -> System:
    system: System = await make_system(noop=True)
    return system


def event(event_type: str, data: Any = None, **attributes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "https://ci.example.com/pipelines/7",
        "type": event_type,
        "data": data,
        **attributes,
    }


async def send(system: System, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return await system.http.post(EVENTS, json=body, headers={**STRUCTURED, **system.auth(key)})


async def test_structured_and_binary_events_start_workflows_once_per_id(api: System) -> None:
    await route(api, "builds", {"match": {"type": "com.example.build.*"}, "start": HEALTH})

    structured = event("com.example.build.finished", {"ok": True})
    first = await send(api, structured)
    assert first.status_code == 202, first.text
    [outcome] = first.json()["outcomes"]
    assert outcome["result"] == "started" and outcome["route"] == "builds"
    again = await send(api, structured)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["outcomes"] == [outcome]

    binary_id = str(uuid.uuid4())
    headers = {
        **api.auth(),
        "ce-specversion": "1.0",
        "ce-id": binary_id,
        "ce-source": "/ci/pipelines/7",
        "ce-type": "com.example.build.started",
        "ce-traceparent": "00-abc-def-01",
        "Content-Type": "application/json",
    }
    binary = await api.http.post(EVENTS, content=b'{"n": 1}', headers=headers)
    assert binary.status_code == 202, binary.text
    kept = binary.json()
    assert kept["event_id"] == binary_id and kept["data"] == {"n": 1}
    assert kept["extensions"] == {"traceparent": "00-abc-def-01"}
    [started] = kept["outcomes"]
    assert started["result"] == "started"
    assert started["workflow_id"] != outcome["workflow_id"]
    repeat = await api.http.post(EVENTS, content=b'{"n": 1}', headers=headers)
    assert repeat.status_code == 200

    for wf_id in (outcome["workflow_id"], started["workflow_id"]):
        detail = await api.until_status(wf_id, "completed")
        assert detail["initiator"] == "route:builds"
    listed = await api.http.get(f"{EVENTS}?type=com.example.build.started", headers=api.auth())
    assert [e["event_id"] for e in listed.json()["items"]] == [binary_id]


async def test_events_matching_nothing_are_kept_and_routes_match_what_they_should(
    api: System,
) -> None:
    viewer = await api.key("viewer")
    await route(
        api,
        "big-batches",
        {
            "match": {"expression": "type == 'com.example.batch' && data.size > 100"},
            "start": HEALTH,
        },
    )
    await route(
        api,
        "prod-tags",
        {
            "match": {"source": "https://ci.example.com/*", "data": {"ref": "refs/tags/v*"}},
            "start": HEALTH,
        },
    )
    await route(
        api,
        "fragile",
        {"match": {"type": "com.example.push", "expression": "data.count > 1"}, "start": HEALTH},
    )
    small = await send(api, event("com.example.batch", {"size": 3}))
    big = await send(api, event("com.example.batch", {"size": 300}))
    tag = await send(api, event("com.example.push", {"ref": "refs/tags/v1.2"}))
    branch = await send(api, event("com.example.push", {"ref": "refs/heads/main"}))
    unmatched = await send(api, event("com.example.other"))
    matched = {
        "small": small.json()["matched"],
        "big": big.json()["matched"],
        "tag": tag.json()["matched"],
        "branch": branch.json()["matched"],
        "unmatched": unmatched.json()["matched"],
    }
    assert matched == {
        "small": [],
        "big": ["big-batches"],
        "tag": ["prod-tags"],
        "branch": [],
        "unmatched": [],
    }
    # An expression that reads a field an event lacks does not match it, and says why.
    push_outcomes = tag.json()["outcomes"]
    assert [o["route"] for o in push_outcomes if o["result"] == "error"] == ["fragile"]
    assert "could not be evaluated" in push_outcomes[0]["message"]

    page = await api.http.get(f"{EVENTS}?limit=2", headers=api.auth(viewer))
    assert page.status_code == 200
    items = page.json()["items"]
    assert [i["type"] for i in items] == ["com.example.other", "com.example.push"]
    assert items[0]["outcomes"] == [] and items[0]["matched"] == []
    older = await api.http.get(
        f"{EVENTS}?limit=10&before={page.json()['next_before']}", headers=api.auth(viewer)
    )
    assert len(older.json()["items"]) == 3
    one = await api.http.get(f"{EVENTS}/{items[0]['id']}", headers=api.auth(viewer))
    assert one.json()["event_id"] == unmatched.json()["event_id"]
    assert (await api.http.get(f"{EVENTS}/{2**62}", headers=api.auth())).status_code == 404
    far = await api.http.get(f"{EVENTS}?before={2**62}&limit=1", headers=api.auth())
    assert far.json()["items"][0]["id"] == items[0]["id"]
    naive = await api.http.get(f"{EVENTS}?since=2026-01-01T00:00:00", headers=api.auth())
    assert naive.status_code == 422
    since = await api.http.get(f"{EVENTS}?since=2000-01-01T00:00:00Z", headers=api.auth())
    assert len(since.json()["items"]) == 5


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"id": None}, "id"),
        ({"type": None}, "type"),
        ({"specversion": "0.3"}, "specversion"),
        ({"source": ""}, "source"),
        ({"Bad-Extension": "x"}, "extensions"),
    ],
)
async def test_a_bad_cloudevent_is_422_with_a_hint(
    api: System, change: dict[str, Any], says: str
) -> None:
    body = {k: v for k, v in {**event("com.example.x"), **change}.items() if v is not None}
    resp = await send(api, body)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert "CloudEvents 1.0" in error["hint"]
    assert any(says in f["field"] for f in error["fields"]), error


async def test_requests_that_carry_no_event_are_422(api: System) -> None:
    plain = await api.http.post(EVENTS, json=event("com.example.x"), headers=api.auth())
    assert plain.status_code == 422
    assert "ce-specversion" in plain.json()["error"]["message"]
    batch = await api.http.post(
        EVENTS,
        content=b"[]",
        headers={**api.auth(), "Content-Type": "application/cloudevents-batch+json"},
    )
    assert batch.status_code == 422
    viewer = await api.key("viewer")
    assert (await send(api, event("com.example.x"), viewer)).status_code == 403
    big = event("com.example.x", {"blob": "x" * (api.settings.event_max_bytes + 1)})
    assert (await send(api, big)).status_code == 413


async def test_large_data_is_routed_but_not_kept_whole(api: System) -> None:
    data = {"blob": base64.b64encode(b"x" * 70_000).decode(), "kind": "large"}
    resp = await send(api, event("com.example.large", data))
    assert resp.status_code == 202
    assert resp.json()["data"] is None and resp.json()["data_truncated"] is True


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"match": {}, "start": {"workflow_type": "nope"}}, 422, "unknown workflow type"),
        (
            {
                "match": {},
                "start": {
                    "workflow_type": "deployment",
                    "input": {"component": "${data.component}", "environment": "staging"},
                },
            },
            422,
            "version",
        ),
        (
            {
                "match": {},
                "start": {
                    "workflow_type": "deployment",
                    "input": {
                        "component": "${data.component}",
                        "version": "${data.version}",
                        "environment": "staging",
                        "strategy": {"type": "canary", "steps": [{"set_weight": 500}]},
                    },
                },
            },
            422,
            "strategy",
        ),
        ({"match": {}, "start": {**HEALTH, "input": {"rounds": "${nothing.x}"}}}, 422, "${"),
        ({"match": {"expression": "data.x >"}, "start": HEALTH}, 422, "expression"),
        ({"match": {}, "signal": {"signal": "approve", "deployment": "d"}}, 422, "approve"),
        (
            {
                "match": {},
                "start": {
                    "workflow_type": "deployment",
                    "input": {
                        "component": "demo",
                        "version": "${data.version}",
                        "environment": "prod",
                        "freeze_override": True,
                    },
                },
            },
            422,
            "cannot override freezes",
        ),
        ({"match": {}, "signal": {"signal": "promote"}}, 422, "component"),
        ({"match": {}}, 422, "exactly one action"),
        (
            {"match": {}, "start": {"workflow_type": "component-retire", "input": {}}},
            403,
            "admin",
        ),
    ],
)
async def test_a_route_that_can_never_act_is_refused(
    api: System, body: dict[str, Any], status: int, says: str
) -> None:
    operator = await api.key("operator")
    resp = await api.http.post(
        "/api/v1/event-routes", json={"name": "rt", **body}, headers=api.auth(operator)
    )
    assert resp.status_code == status, resp.text
    assert says in resp.text
    listed = await api.http.get("/api/v1/event-routes", headers=api.auth())
    assert listed.json() == []


async def test_viewers_read_routes_and_operators_write_them(api: System) -> None:
    viewer = await api.key("viewer")
    body = {"name": "builds", "match": {"type": "com.example.*"}, "start": HEALTH}
    refused = await api.http.post("/api/v1/event-routes", json=body, headers=api.auth(viewer))
    assert refused.status_code == 403
    created = await route(api, "builds", {k: v for k, v in body.items() if k != "name"})
    assert created["version"] == 1 and created["role"] == "admin"
    replaced = await api.http.put(
        "/api/v1/event-routes/builds",
        json={"match": {"type": "com.example.build"}, "start": HEALTH, "enabled": False},
        headers=api.auth(),
    )
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    ignored = await send(api, event("com.example.build"))
    assert ignored.json()["matched"] == []
    read = await api.http.get("/api/v1/event-routes/builds", headers=api.auth(viewer))
    assert read.json()["enabled"] is False
    deleted = await api.http.delete("/api/v1/event-routes/builds", headers=api.auth())
    assert deleted.status_code == 204
    gone = await api.http.get("/api/v1/event-routes/builds", headers=api.auth())
    assert gone.status_code == 404


async def test_a_route_promotes_the_paused_canary_of_its_target(api: System) -> None:
    name = await component(api)
    first = await api.http.post(
        "/api/v1/deployments",
        json={"component": name, "environment": "qa", "version": "v1"},
        headers=api.auth(),
    )
    assert first.status_code == 202

    async def state(dep: str) -> str:
        resp = await api.http.get(f"/api/v1/deployments/{dep}", headers=api.auth())
        return str(resp.json()["state"])

    await wait_for(lambda: state(first.json()["id"]), lambda s: s == "succeeded", what="v1")
    paused = {"type": "canary", "steps": [{"set_weight": 50}, {"pause": {}}]}
    second = await api.http.post(
        "/api/v1/deployments",
        json={"component": name, "environment": "qa", "version": "v2", "strategy": paused},
        headers=api.auth(),
    )
    dep = second.json()["id"]
    await wait_for(lambda: state(dep), lambda s: s == "paused", what="v2 paused")
    await route(
        api,
        "promote-on-green",
        {
            "match": {"type": "com.example.checks", "data": {"status": "green"}},
            "signal": {
                "signal": "promote",
                "component": "${data.component}",
                "environment": "qa",
                "full": True,
            },
        },
    )
    resp = await send(api, event("com.example.checks", {"status": "green", "component": name}))
    assert resp.status_code == 202, resp.text
    [outcome] = resp.json()["outcomes"]
    assert outcome == {
        "route": "promote-on-green",
        "result": "signalled",
        "workflow_id": None,
        "deployment_id": dep,
        "message": None,
        "retryable": False,
    }
    await wait_for(lambda: state(dep), lambda s: s == "succeeded", what="v2 promoted")
    none_running = await send(
        api, event("com.example.checks", {"status": "green", "component": name})
    )
    [nothing] = none_running.json()["outcomes"]
    assert nothing["result"] == "error" and "no deployment" in nothing["message"]
    assert len(await deployments_of(api, name)) == 2


async def test_a_start_that_found_temporal_down_is_tried_again_by_the_repeat(
    make_system: Callable[..., Any],
) -> None:
    down: System = await make_system(worker=False, temporal_address=f"127.0.0.1:{free_port()}")
    await route(down, "builds", {"match": {"type": "com.example.build"}, "start": HEALTH})
    body = event("com.example.build")
    refused = await send(down, body)
    assert refused.status_code == 503, refused.text
    assert "send the same event again" in refused.json()["error"]["hint"]
    kept = await down.http.get(EVENTS, headers=down.auth())
    [outcome] = kept.json()["items"][0]["outcomes"]
    assert outcome["result"] == "error" and outcome["retryable"] is True

    # The same store, now with Temporal: the sender's retry starts what failed, once.
    up: System = await make_system(noop=True)
    retried = await send(up, body)
    assert retried.status_code == 200, retried.text
    [started] = retried.json()["outcomes"]
    assert started["result"] == "started" and started["retryable"] is False
    again = await send(up, body)
    assert again.status_code == 200 and again.json()["outcomes"] == [started]
    await up.until_status(started["workflow_id"], "completed")


async def test_the_store_keeps_the_newest_events_only(make_system: Callable[..., Any]) -> None:
    system: System = await make_system(worker=False, events_retention_count=100)
    ids = []
    for _ in range(105):
        resp = await send(system, event("com.example.tick"))
        assert resp.status_code == 202
        ids.append(resp.json()["id"])
    page = await system.http.get(f"{EVENTS}?limit=200", headers=system.auth())
    assert [e["id"] for e in page.json()["items"]] == ids[::-1][:100]
    dropped = await system.http.get(f"{EVENTS}/{ids[0]}", headers=system.auth())
    assert dropped.status_code == 404


async def test_nul_characters_are_refused_or_kept_never_a_server_error(api: System) -> None:
    await route(
        api,
        "deploy-any",
        {
            "match": {"type": "com.example.nul"},
            "start": {
                "workflow_type": "deployment",
                "input": {
                    "component": "${data.name}",
                    "version": "${data.name}",
                    "environment": "qa",
                },
            },
        },
    )
    subject = await send(api, event("com.example.nul", subject="a\x00b"))
    assert subject.status_code == 422
    kept = await send(api, event("com.example.nul", {"name": "x\x00y", "note": "\x00"}))
    assert kept.status_code == 202, kept.text
    assert kept.json()["outcomes"][0]["result"] == "error"
    read = await api.http.get(f"{EVENTS}/{kept.json()['id']}", headers=api.auth())
    assert read.json()["data"] == {"name": "x\x00y", "note": "\x00"}
    described = await api.http.post(
        "/api/v1/event-routes",
        json={"name": "nul", "description": "\x00", "match": {}, "start": HEALTH},
        headers=api.auth(),
    )
    assert described.status_code == 422
