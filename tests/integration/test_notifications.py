"""Notifications out through the real API, worker, Temporal dev server, OpenBao and a real HTTP
receiver: a deployment's events reach a receiver that was down for 20 s, each exactly once, in
order, signed; filters hold; the deliveries endpoint shows the refusals and the success; the
signing secret is shown once and stored only in Vault."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect, text
from standardwebhooks.webhooks import Webhook

from core.db.engine import make_engine
from tests.integration.deploying import FINAL, until
from tests.integration.notification_receiver import Received, receiver
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System
from tests.integration.test_components_api import DEMO
from tests.support import wait_for

URL = "/api/v1/notifications"
DEPLOYMENT_EVENTS = [
    "deployment.started",
    "deployment.paused",
    "deployment.awaiting_approval",
    "deployment.promoted",
    "deployment.succeeded",
    "deployment.rolled_back",
    "deployment.aborted",
    "deployment.failed",
]
# A canary that pauses until promoted, then waits for an admin's approval.
GATED = {
    "type": "canary",
    "steps": [
        {"set_weight": 20},
        {"pause": {}},
        {"approval": {"roles": ["admin"]}},
        {"set_weight": 100},
    ],
}
# Long enough that the first deliveries meet the outage and are retried (1, 2, 4 s apart);
# the deployments' later events may arrive during it or after: in order either way.
OUTAGE_SECONDS = 10.0


async def subscribe(system: System, **spec: Any) -> dict[str, Any]:
    resp = await system.http.post(URL, json=spec, headers=system.auth())
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def deploy(system: System, version: str, strategy: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"component": "demo", "environment": "prod", "version": version}
    if strategy is not None:
        body["strategy"] = strategy
    resp = await system.http.post("/api/v1/deployments", json=body, headers=system.auth())
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


async def act(system: System, deployment_id: str, action: str) -> None:
    resp = await system.http.post(
        f"/api/v1/deployments/{deployment_id}/{action}",
        json={"reason": "test"},
        headers=system.auth(),
    )
    assert resp.status_code == 200, resp.text


async def store_dump(system: System) -> str:
    """Every row of every table of the store, as text."""
    engine = make_engine(system.settings)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            rows = [repr(list(await conn.execute(text(f'SELECT * FROM "{t}"')))) for t in tables]
    finally:
        await engine.dispose()
    return "\n".join(rows)


def event_of(request: Received) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.body)
    return body


async def test_events_reach_a_receiver_that_was_down_exactly_once_in_order_and_signed(
    make_system: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    system: System = await make_system(
        noop=True,
        vault_url=openbao.url,
        vault_token=openbao.token,
        notification_retry_max_seconds=5,
    )
    assert (
        await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    ).is_success
    async with receiver() as rx:
        rx.refuse_until = time.monotonic() + OUTAGE_SECONDS
        signed = await subscribe(
            system,
            url=f"{rx.url}/signed",
            event_types=DEPLOYMENT_EVENTS,
            components=["demo"],
            environments=["prod"],
        )
        secret = signed["signing_secret"]
        assert secret.startswith("whsec_")
        slack = await subscribe(
            system, url=f"{rx.url}/slack", event_types=["deployment.succeeded"], format="slack"
        )
        assert slack["signing_secret"] is None
        await subscribe(system, url=f"{rx.url}/other", event_types=DEPLOYMENT_EVENTS,
                        components=["other"])  # fmt: skip
        await subscribe(system, url=f"{rx.url}/staging", event_types=DEPLOYMENT_EVENTS,
                        environments=["staging"])  # fmt: skip
        await subscribe(system, url=f"{rx.url}/schedules", event_types=["schedule.skipped"])

        first = await deploy(system, "v1")
        assert (await until(system, first, *FINAL))["state"] == "succeeded"
        second = await deploy(system, "v2", GATED)
        await wait_for(
            lambda: _phase(system, second), lambda p: p.startswith("step 2"), what="the pause"
        )
        await act(system, second, "promote")
        await wait_for(
            lambda: _phase(system, second),
            lambda p: p.startswith("waiting for approval"),
            what="the approval gate",
        )
        await act(system, second, "approve")
        assert (await until(system, second, *FINAL))["state"] == "succeeded"

        expected = [
            ("deployment.started", first),
            ("deployment.succeeded", first),
            ("deployment.started", second),
            ("deployment.paused", second),
            ("deployment.promoted", second),
            ("deployment.awaiting_approval", second),
            ("deployment.promoted", second),
            ("deployment.succeeded", second),
        ]
        accepted = await wait_for(
            lambda: _value(rx.accepted("/signed")),
            lambda got: len(got) >= len(expected) and len(rx.accepted("/slack")) >= 2,
            within=90,
            every=0.2,
            what="every event accepted",
        )
        # Every event exactly once (by webhook-id), in order, each signature valid.
        ids = [r.headers["webhook-id"] for r in accepted]
        assert len(ids) == len(set(ids)) == len(expected), ids
        got = [(event_of(r)["type"], event_of(r)["data"]["deployment_id"]) for r in accepted]
        assert got == expected
        for r in accepted:
            assert Webhook(secret).verify(r.body, r.headers)["id"]
            assert "env" not in event_of(r)["data"]
        refused = [r for r in rx.requests if r.path == "/signed" and r.status == 503]
        assert refused, "the receiver's outage was never met"
        assert {r.headers["webhook-id"] for r in refused} <= set(ids)
        # Retries keep the id: the first message was refused, then accepted under its id.
        assert refused[0].headers["webhook-id"] == ids[0]

        slack_bodies = [json.loads(r.body) for r in rx.accepted("/slack")]
        assert len(slack_bodies) == 2
        assert set(slack_bodies[0]) == {"text"}
        assert slack_bodies[0]["text"].startswith("deployment.succeeded: demo v1 in prod")
        assert slack_bodies[1]["text"].startswith("deployment.succeeded: demo v2 in prod (canary)")
        assert not [r for r in rx.requests if r.path in ("/other", "/staging", "/schedules")]

        back = min(r.at for r in rx.requests if r.status == 200)
        delay = back - rx.refuse_until
        lost = len(expected) - len(set(ids))
        duplicated = len(accepted) - len(set(ids))
        print(f"\nnotifications: lost {lost}, duplicated {duplicated}, first delivery {delay:.1f}s"
              f" after the receiver came back; {len(refused)} refused attempts")  # fmt: skip
        assert delay < 10  # retries are at most 5 s apart here

    # The deliveries endpoint: the refusals, then the success, for an operator.
    operator = await system.key("operator", "ops")
    page = await system.http.get(
        f"{URL}/{signed['id']}/deliveries?limit=200", headers=system.auth(operator)
    )
    assert page.status_code == 200, page.text
    attempts = page.json()["items"]
    firsts = [a for a in attempts if a["webhook_id"] == ids[0]]
    assert firsts[0]["outcome"] == "delivered" and firsts[0]["status_code"] == 200
    assert all(a["outcome"] == "refused" and a["status_code"] == 503 for a in firsts[1:])
    assert firsts[-1]["response_excerpt"] == "down for maintenance"
    assert [a["attempt"] for a in reversed(firsts)] == list(range(1, len(firsts) + 1))
    viewer = await system.key("viewer", "eyes")
    denied = await system.http.get(f"{URL}/{signed['id']}/deliveries", headers=system.auth(viewer))
    assert denied.status_code == 403

    # The secret was in the 201 only: not in GET, the list, or any row of the store.
    one = await system.http.get(f"{URL}/{signed['id']}", headers=system.auth())
    listed = await system.http.get(URL, headers=system.auth())
    for resp in (one, listed):
        assert resp.status_code == 200 and secret not in resp.text
        assert "signing_secret" not in resp.text
    dump = await store_dump(system)
    assert secret not in dump and secret.removeprefix("whsec_") not in dump
    assert signed["id"] in dump  # the dump did read the notification tables


async def _phase(system: System, deployment_id: str) -> str:
    resp = await system.http.get(f"/api/v1/deployments/{deployment_id}", headers=system.auth())
    return str(resp.json()["status"].get("phase", ""))


async def _value(value: list[Received]) -> list[Received]:
    return value


async def test_after_a_rotation_messages_verify_with_the_new_and_the_previous_secret(
    make_system: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    system: System = await make_system(noop=True, vault_url=openbao.url, vault_token=openbao.token)
    assert (
        await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    ).is_success
    async with receiver() as rx:
        created = await subscribe(system, url=f"{rx.url}/signed", event_types=DEPLOYMENT_EVENTS)
        old = created["signing_secret"]
        rotated = await system.http.post(
            f"{URL}/{created['id']}/rotate-secret", headers=system.auth()
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["signing_secret"]
        assert new.startswith("whsec_") and new != old
        slack = await subscribe(system, url=f"{rx.url}/slack", event_types=DEPLOYMENT_EVENTS,
                                format="slack")  # fmt: skip
        unsigned = await system.http.post(
            f"{URL}/{slack['id']}/rotate-secret", headers=system.auth()
        )
        assert unsigned.status_code == 422 and unsigned.json()["error"]["hint"]

        done = await deploy(system, "v1")
        assert (await until(system, done, *FINAL))["state"] == "succeeded"
        got = await wait_for(
            lambda: _value(rx.accepted("/signed")), lambda r: len(r) >= 2, what="two events"
        )
        for r in got:
            assert Webhook(new).verify(r.body, r.headers) == Webhook(old).verify(r.body, r.headers)
    listed = await system.http.get(URL, headers=system.auth())
    assert new not in listed.text and old not in listed.text
    assert new not in await store_dump(system)


async def test_bad_subscriptions_are_refused_with_a_hint(make_system: Callable[..., Any]) -> None:
    system: System = await make_system(worker=False)
    good = {"url": "https://hooks.example.com/x", "event_types": ["deployment.failed"]}
    cases = {
        "ftp://example.com/x": "http and https",
        "http://169.254.169.254/latest/meta-data": "link-local or metadata",
        "http://[fe80::1]/x": "link-local or metadata",
        "http://user:pw@example.com/x": "credentials",
        "https:///nohost": "no host",
    }
    for url, words in cases.items():
        resp = await system.http.post(URL, json={**good, "url": url}, headers=system.auth())
        assert resp.status_code == 422, (url, resp.text)
        error = resp.json()["error"]
        assert words in error["message"] and error["hint"], error
    too_long = {**good, "url": "https://example.com/" + "a" * 2100}
    assert (await system.http.post(URL, json=too_long, headers=system.auth())).status_code == 422
    unknown = await system.http.post(
        URL, json={**good, "event_types": ["deployment.exploded"]}, headers=system.auth()
    )
    assert unknown.status_code == 422
    assert "deployment.started" in unknown.text  # the answer lists what is allowed
    operator = await system.key("operator", "ops")
    denied = await system.http.post(URL, json=good, headers=system.auth(operator))
    assert denied.status_code == 403
    assert (await system.http.get(URL, headers=system.auth())).json() == []


async def test_outside_development_loopback_receivers_are_refused(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(worker=False, notifications_allow_private=False)
    for url in ("http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x"):
        body = {"url": url, "event_types": ["deployment.failed"], "format": "slack"}
        resp = await system.http.post(URL, json=body, headers=system.auth())
        assert resp.status_code == 422 and "loopback" in resp.text, resp.text
