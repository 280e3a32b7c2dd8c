"""A policy's refusal that no client sees is in the audit trail too: a scheduled start refused
by a freeze window (a skip) and an event route's start refused by it (an outcome in the
receipt) are each an `auth.denied` event naming the policy and the rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.schedules import ScheduleActivities
from core.db.engine import make_engine, sessions
from core.models.schedules import ScheduledStartInput
from tests.integration.deploying import FINAL, deploy, register_demo, until
from tests.integration.system import System

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)


async def test_starts_refused_by_a_freeze_out_of_sight_of_a_client_are_audited(
    make_system: Callable[..., Any],
) -> None:
    s: System = await register_demo(await make_system(worker=False), replicas=1)
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }
    resp = await s.http.put(
        "/api/v1/policies/dev", json={"freeze_windows": [window]}, headers=s.auth()
    )
    assert resp.status_code == 200, resp.text
    engine = make_engine(s.settings)
    try:
        schedules = ScheduleActivities(sessions(engine), s.temporal, s.settings)
        inp = ScheduledStartInput(
            schedule="nightly",
            type="deployment",
            input={"component": "demo", "environment": "dev", "version": "v9"},
            role="operator",
        )
        result = await ActivityEnvironment().run(schedules.start_scheduled, inp)
    finally:
        await engine.dispose()
    assert result.outcome == "skipped" and "freeze_windows[0]" in (result.reason or "")

    resp = await s.http.post(
        "/api/v1/event-routes",
        json={
            "name": "releases",
            "match": {"type": "com.example.release"},
            "start": {
                "workflow_type": "deployment",
                "input": {"component": "demo", "environment": "dev", "version": "${data.v}"},
            },
        },
        headers=s.auth(),
    )
    assert resp.status_code == 201, resp.text
    cloud_event = {
        "specversion": "1.0",
        "id": "rel-1",
        "source": "/ci",
        "type": "com.example.release",
        "data": {"v": "v9"},
    }
    resp = await s.http.post(
        "/api/v1/events",
        json=cloud_event,
        headers={"Content-Type": "application/cloudevents+json", **s.auth()},
    )
    assert resp.status_code in (200, 202), resp.text
    [outcome] = resp.json()["outcomes"]
    assert outcome["result"] == "error" and "freeze_windows[0]" in outcome["message"]

    resp = await s.http.get("/api/v1/audit", params={"action": "auth.denied"}, headers=s.auth())
    assert resp.status_code == 200, resp.text
    route_event, event = resp.json()  # newest first
    assert route_event["actor"] == "route:releases"
    assert (route_event["detail"]["via"], route_event["detail"]["rule"]) == (
        "event-route:releases",
        "freeze_windows[0]",
    )
    assert route_event["detail"]["event"] == "/ci/rel-1"
    assert event["actor"] == "schedule:nightly"
    detail = event["detail"]
    assert (detail["reason"], detail["rule"], detail["via"]) == (
        "policy",
        "freeze_windows[0]",
        "schedule:nightly",
    )
    assert (detail["component"], detail["environment"], detail["policy"]) == (
        "demo",
        "dev",
        "dev v1",
    )
    verdict = (await s.http.get("/api/v1/audit/verify", headers=s.auth())).json()
    assert verdict["intact"], verdict


async def test_a_configuration_roll_out_refused_on_one_target_is_audited(
    make_system: Callable[..., Any],
) -> None:
    s: System = await register_demo(await make_system(noop=True), replicas=1)
    for environment in ("dev", "prod"):
        first = await deploy(s, "v1", environment=environment)
        assert (await until(s, first["id"], *FINAL))["state"] == "succeeded"
    policy = {"allowed_strategies": ["canary"]}
    resp = await s.http.put("/api/v1/policies/dev", json=policy, headers=s.auth())
    assert resp.status_code == 200, resp.text
    body = {
        "value": "bonjour",
        "scope": {"component": "demo"},  # dev (refused by its policy), then prod
        "roll_out": {"strategy": {"type": "rolling"}},
    }
    resp = await s.http.put("/api/v1/configuration/greeting", json=body, headers=s.auth())
    assert resp.status_code in (200, 201), resp.text  # the change is made ...
    refused, started = resp.json()["rollouts"]
    assert refused["environment"] == "dev" and refused["status"] == 403  # ... refused in dev,
    assert started["environment"] == "prod" and started["deployment_id"]  # not in prod

    resp = await s.http.get("/api/v1/audit", params={"action": "auth.denied"}, headers=s.auth())
    [event] = resp.json()
    assert event["actor"] == "apikey:admin" and event["target"] == "/api/v1/deployments"
    detail = event["detail"]
    assert (detail["via"], detail["rule"], detail["reason"]) == (
        "config-rollout:greeting",
        "allowed_strategies",
        "policy",
    )
    assert (detail["component"], detail["environment"]) == ("demo", "dev")
