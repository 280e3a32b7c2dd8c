"""Stop the line, against the real system: an operator sets the global stop (audited, with who
and why), every automated start is refused while it is set (a schedule's run is a skip that
names the stop, an event route's start an outcome that does), a person's deployment still
goes, and once cleared the same schedule deploys again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from api.line_stop_metrics import watch_line_stops
from tests.integration.deploying import until as until_deployment
from tests.integration.system import System
from tests.integration.test_webhooks import component, route
from tests.support import wait_for

API = "/api/v1/stop-the-line"
SCHEDULES = "/api/v1/schedules"
EVENTS = "/api/v1/events"
HOURLY = {"intervals": [{"every": "1h"}]}
REASON = "INC-4711: payments are failing in production"


async def fire(system: System, schedule: str, count: int) -> dict[str, Any]:
    """Trigger the schedule's run number `count` and wait for its outcome."""
    resp = await system.http.post(f"{SCHEDULES}/{schedule}/trigger", json={}, headers=system.auth())
    assert resp.status_code == 202, resp.text

    async def describe() -> dict[str, Any]:
        got = await system.http.get(f"{SCHEDULES}/{schedule}", headers=system.auth())
        assert got.status_code == 200, got.text
        return dict(got.json())

    seen = await wait_for(
        describe,
        lambda d: len(d["last_runs"]) == count and d["last_runs"][0]["outcome"] is not None,
        within=40,
        every=0.3,
        what=f"scheduled run {count}",
    )
    return dict(seen["last_runs"][0])


def gauge(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["scope"]: sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "r2c_line_stopped"
    }


async def test_the_global_stop_halts_automation_but_not_people(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(noop=True)
    name = await component(system)
    operator, viewer = await system.key("operator", "ops"), await system.key("viewer")
    registry = CollectorRegistry()
    collector = watch_line_stops(system.settings, registry)
    try:
        none = await system.http.get(API, headers=system.auth(viewer))
        assert none.status_code == 200 and none.json() == {
            "stopped": False,
            "global_stop": None,
            "stops": [],
        }
        assert gauge(registry) == {"global": 0.0}
        refused = await system.http.put(API, json={"reason": "x"}, headers=system.auth(viewer))
        assert refused.status_code == 403, refused.text
        blank = await system.http.put(API, json={"reason": "  "}, headers=system.auth(operator))
        assert blank.status_code == 422 and "reason" in blank.text, blank.text
        nothing = await system.http.delete(API, headers=system.auth(operator))
        assert nothing.status_code == 404 and "no stop" in nothing.text, nothing.text

        stopped = await system.http.put(API, json={"reason": REASON}, headers=system.auth(operator))
        assert stopped.status_code == 200, stopped.text
        stop = stopped.json()
        assert (stop["scope"], stop["reason"], stop["set_by"]) == ("global", REASON, "apikey:ops")
        shown = (await system.http.get(API, headers=system.auth(viewer))).json()
        assert shown["stopped"] is True and shown["global_stop"] == stop
        assert shown["stops"] == [stop]
        assert gauge(registry) == {"global": 1.0}

        # A schedule's run while stopped: a skip that names the stop.
        request = {"component": name, "environment": "dev", "version": "v1"}
        body = {"id": f"t-{uuid.uuid4().hex[:10]}", "type": "deployment", "input": request}
        made = await system.http.post(
            SCHEDULES, json={**body, "spec": HOURLY}, headers=system.auth()
        )
        assert made.status_code == 201, made.text
        skipped = await fire(system, body["id"], 1)
        assert skipped["status"] == "completed", skipped
        outcome = skipped["outcome"]
        assert outcome.startswith("skipped: the line is stopped (global)"), outcome
        assert REASON in outcome and "apikey:ops" in outcome

        # An event route's start while stopped: an outcome that names the stop.
        start = {"workflow_type": "deployment", "input": {**request, "version": "v2"}}
        await route(system, "on-build", {"match": {"type": "com.example.built"}, "start": start})
        event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/ci"}
        event["type"] = "com.example.built"
        sent = await system.http.post(
            EVENTS,
            json=event,
            headers={"Content-Type": "application/cloudevents+json", **system.auth()},
        )
        assert sent.status_code == 202, sent.text
        [routed] = sent.json()["outcomes"]
        assert routed["result"] == "error" and routed["deployment_id"] is None, routed
        assert "the line is stopped (global)" in routed["message"] and REASON in routed["message"]

        # A person deploys by hand: it goes.
        by_hand = await system.http.post(
            "/api/v1/deployments", json={**request, "version": "v3"}, headers=system.auth(operator)
        )
        assert by_hand.status_code == 202, by_hand.text
        await until_deployment(system, by_hand.json()["id"], "succeeded")

        cleared = await system.http.delete(API, headers=system.auth(operator))
        assert cleared.status_code == 200 and cleared.json() == stop, cleared.text
        assert (await system.http.get(API, headers=system.auth())).json()["stopped"] is False
        assert gauge(registry) == {"global": 0.0}

        # Cleared: the same schedule deploys again.
        started = await fire(system, body["id"], 2)
        assert started["outcome"].startswith("started dep-idem-"), started
        scheduled = started["outcome"].removeprefix("started ")
        done = await until_deployment(system, scheduled, "succeeded")
        assert (done["version"], done["initiator"]) == ("v1", f"schedule:{body['id']}")

        trail = await system.http.get("/api/v1/audit?limit=1000", headers=system.auth())
        assert trail.status_code == 200, trail.text
        events = [e for e in reversed(trail.json()) if e["action"].startswith("line_stop.")]
        assert [(e["action"], e["actor"], e["target"]) for e in events] == [
            ("line_stop.set", "apikey:ops", "global"),
            ("line_stop.cleared", "apikey:ops", "global"),
        ], events
        assert events[0]["detail"]["reason"] == REASON
        assert events[1]["detail"]["set_by"] == "apikey:ops"
    finally:
        registry.unregister(collector)
        collector.close()
