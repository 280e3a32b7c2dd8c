"""Schedules on the session's Temporal server: runs start at the times shown, overlaps are
skipped and counted, pause/trigger/backfill steer it, and every run names the schedule."""

from __future__ import annotations

import json
import statistics
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)

from core.ids import schedule_id
from core.models.health import HealthCheckInput
from tests.integration.deploying import deploy, register_demo
from tests.integration.deploying import until as until_deployment
from tests.integration.notification_receiver import Received, receiver
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System
from tests.support import wait_for

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

API = "/api/v1/schedules"
EVERY_2S = {"intervals": [{"every": "2s"}]}
HOURLY = {"intervals": [{"every": "1h"}]}
PAUSED_CANARY = {"type": "canary", "steps": [{"set_weight": 50}, {"pause": {}}]}


async def deploy_until(system: System, version: str, state: str) -> dict[str, Any]:
    return await until_deployment(system, (await deploy(system, version))["id"], state)


def new_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def create(system: System, spec: dict[str, Any], **body: Any) -> dict[str, Any]:
    payload = {"id": new_id(), "type": "component-health-check", "input": {}, "spec": spec}
    resp = await system.http.post(API, json={**payload, **body}, headers=system.auth())
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def describe(system: System, schedule: str) -> dict[str, Any]:
    resp = await system.http.get(f"{API}/{schedule}", headers=system.auth())
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def until(
    system: System, schedule: str, done: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    return await wait_for(lambda: describe(system, schedule), done, within=40, every=0.3, what=what)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_an_interval_schedule_starts_runs_at_the_times_it_showed(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(noop=True)
    made = await create(system, EVERY_2S, note="every two seconds")
    name = made["id"]
    assert made["spec"]["intervals"] == [{"every": 2.0, "offset": 0.0}]
    assert made["note"] == "every two seconds" and made["created_by"] == "apikey:admin"
    shown = [at(t) for t in made["next_runs"]]
    assert len(shown) == 5
    assert all(b - a == timedelta(seconds=2) for a, b in zip(shown, shown[1:], strict=False))

    wanted = 10  # fires, for the accuracy figures
    seen = await wait_for(
        lambda: describe(system, name),
        lambda d: len([r for r in d["last_runs"] if r["status"] == "completed"]) >= wanted,
        within=60,
        every=0.5,
        what=f"{wanted} completed runs",
    )
    runs = sorted(seen["last_runs"], key=lambda r: r["scheduled_at"])
    scheduled = [at(r["scheduled_at"]) for r in runs]
    # The first runs are the times shown at creation (a run due while creating may precede).
    assert set(shown[:3]) <= set(scheduled), (shown, scheduled)
    lags = []
    for run in runs:
        detail = await system.get(run["workflow_id"])
        assert detail["initiator"] == f"schedule:{name}"
        assert detail["type"] == "component-health-check"
        lags.append((at(detail["start_time"]) - at(run["scheduled_at"])).total_seconds())
    lags.sort()
    print(
        f"\nschedule fire accuracy over {len(lags)} fires: p50 {statistics.median(lags):.3f}s,"
        f" max {max(lags):.3f}s (workflow start time minus scheduled time)"
    )
    assert max(lags) < 2.0, lags
    assert seen["counts"]["actions"] >= wanted

    listed = await wait_for(
        lambda: system.http.get(API, headers=system.auth()),
        lambda r: name in {s["id"] for s in r.json()["items"]},
        what="the schedule in the list",
    )
    assert listed.status_code == 200


async def test_skip_overlap_skips_and_counts_runs_while_one_runs(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(noop=True)
    # Each run takes about 6 s (three rounds 3 s apart): two-second fires overlap it.
    slow = {"rounds": 3, "interval_seconds": 3}
    name = (await create(system, EVERY_2S, input=slow))["id"]
    seen = await until(
        system,
        name,
        lambda d: d["counts"]["skipped_overlap"] >= 2,
        what="two skipped fires",
    )
    assert seen["overlap"] == "skip"
    assert seen["counts"]["actions"] == 1, seen["counts"]
    assert len(seen["running"]) == 1


async def test_pause_trigger_and_backfill(make_system: Callable[..., Any]) -> None:
    system: System = await make_system(noop=True)
    name = (await create(system, HOURLY, overlap="allow_all"))["id"]
    paused = await system.http.post(
        f"{API}/{name}/pause", json={"note": "maintenance"}, headers=system.auth()
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and paused.json()["note"] == "maintenance"

    # A trigger starts a run now, paused or not.
    triggered = await system.http.post(f"{API}/{name}/trigger", json={}, headers=system.auth())
    assert triggered.status_code == 202, triggered.text
    await until(system, name, lambda d: d["counts"]["actions"] == 1, what="the triggered run")

    unpaused = await system.http.post(
        f"{API}/{name}/unpause", json={"note": "back"}, headers=system.auth()
    )
    assert unpaused.json()["paused"] is False and unpaused.json()["note"] == "back"

    # The last three hours' hourly times, now.
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window = {"start_at": (end - timedelta(hours=3)).isoformat(), "end_at": end.isoformat()}
    filled = await system.http.post(f"{API}/{name}/backfill", json=window, headers=system.auth())
    assert filled.status_code == 202, filled.text
    # Both ends count: four hourly times, after the triggered run.
    seen = await until(system, name, lambda d: d["counts"]["actions"] == 5, what="backfill")
    backfilled = {at(r["scheduled_at"]) for r in seen["last_runs"][:4]}
    assert backfilled == {end - timedelta(hours=h) for h in range(4)}, backfilled

    deleted = await system.http.delete(f"{API}/{name}", headers=system.auth())
    assert deleted.status_code == 204
    gone = await system.http.get(f"{API}/{name}", headers=system.auth())
    assert gone.status_code == 404


async def test_replace_changes_the_spec_and_keeps_the_creator(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(worker=False)
    operator = await system.key("operator", "ops")
    name = (await create(system, HOURLY))["id"]
    body = {
        "type": "component-health-check",
        "input": {"rounds": 2},
        "spec": {"cron": ["30 2 * * 1-5"], "time_zone": "Europe/Berlin", "jitter": "1m"},
        "overlap": "buffer_one",
        "catchup_window": "10m",
        "note": "weekdays",
    }
    resp = await system.http.put(f"{API}/{name}", json=body, headers=system.auth(operator))
    assert resp.status_code == 200, resp.text
    view = resp.json()
    assert view["spec"]["cron"] == ["30 2 * * 1-5"] and view["input"] == {"rounds": 2}
    assert (view["overlap"], view["catchup_window"], view["note"]) == (
        "buffer_one",
        600,
        "weekdays",
    )
    assert view["created_by"] == "apikey:admin"
    berlin = [at(t).astimezone(ZoneInfo("Europe/Berlin")) for t in view["next_runs"]]
    assert all(t.weekday() < 5 and (t.hour, t.minute) in ((2, 30), (2, 31)) for t in berlin), berlin


async def test_a_scheduled_deployment_skips_a_busy_target_and_deploys_a_free_one(
    make_system: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    system: System = await register_demo(
        await make_system(noop=True, vault_url=openbao.url, vault_token=openbao.token)
    )
    await deploy_until(system, "v1", "succeeded")
    busy = await deploy(system, "v2", PAUSED_CANARY)
    await until_deployment(system, busy["id"], "paused")
    request = {"component": "demo", "environment": "dev", "version": "v3"}
    name = (await create(system, HOURLY, type="deployment", input=request))["id"]

    async def fire_and_wait(count: int) -> dict[str, Any]:
        resp = await system.http.post(f"{API}/{name}/trigger", json={}, headers=system.auth())
        assert resp.status_code == 202, resp.text
        return await until(
            system,
            name,
            lambda d: len(d["last_runs"]) == count and d["last_runs"][0]["outcome"] is not None,
            what=f"scheduled run {count}",
        )

    async with receiver() as rx:
        sub = {"url": f"{rx.url}/skips", "event_types": ["schedule.skipped"]}
        subscribed = await system.http.post(
            "/api/v1/notifications", json=sub, headers=system.auth()
        )
        assert subscribed.status_code == 201, subscribed.text
        skipped = (await fire_and_wait(1))["last_runs"][0]
        assert skipped["status"] == "completed"  # a skip is an outcome, not a crash
        assert skipped["outcome"].startswith("skipped: demo is already being deployed to dev")
        assert busy["id"] in skipped["outcome"]
        # ... and a `schedule.skipped` notification says so.
        got = await wait_for(lambda: _value(rx.accepted("/skips")), what="the notification")
        event = json.loads(got[0].body)
        assert (event["type"], event["subject"]) == ("schedule.skipped", f"schedule:{name}")
        assert event["data"]["reason"] == skipped["outcome"].removeprefix("skipped: ")
        assert event["data"]["run"] == skipped["workflow_id"]

    abort = await system.http.post(
        f"/api/v1/deployments/{busy['id']}/abort", json={}, headers=system.auth()
    )
    assert abort.status_code == 200, abort.text
    await until_deployment(system, busy["id"], "aborted")
    started = (await fire_and_wait(2))["last_runs"][0]
    assert started["outcome"].startswith("started dep-idem-"), started
    deployment_id = started["outcome"].removeprefix("started ")
    done = await until_deployment(system, deployment_id, "succeeded")
    assert (done["version"], done["initiator"]) == ("v3", f"schedule:{name}")


async def _value(items: list[Received]) -> list[Received]:
    return items


async def test_bad_schedules_are_422_with_a_hint_and_nothing_is_made(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(worker=False)
    viewer = await system.key("viewer", "watcher")
    good = {"id": new_id(), "type": "component-health-check", "input": {}, "spec": HOURLY}
    bad = [
        ({"spec": {"cron": ["61 * * * *"]}}, "body.spec.cron.0"),
        ({"spec": {"cron": ["* * *"]}}, "body.spec.cron.0"),
        ({"spec": {"intervals": [{"every": "500ms"}]}}, "body.spec.intervals.0.every"),
        ({"spec": {}}, "body.spec"),
        ({"spec": {**HOURLY, "time_zone": "Mars/Olympus"}}, "body.spec.time_zone"),
        ({"spec": {**HOURLY, "jitter": "2d"}}, "body.spec.jitter"),
        ({"spec": {"intervals": [{"every": "1s"}] * 11}}, "body.spec.intervals"),
        ({"type": "no-such-workflow"}, "body.type"),
        ({"input": {"rounds": "many"}}, "input.rounds"),
        ({"id": "system-health"}, "body.id"),
        ({"id": "Bad:Id"}, "body.id"),
        ({"note": "x" * 501}, "body.note"),
        (
            {"type": "deployment", "input": {"component": "nope", "environment": "dev",
                                             "version": "v1"}},
            "input.component",
        ),
        (
            {"type": "deployment", "input": {"component": "nope", "environment": "dev",
                                             "version": "v1", "env": {"A": "b"}}},
            "input.env",
        ),
    ]  # fmt: skip
    for change, field in bad:
        body = {**good, **change}
        resp = await system.http.post(API, json=body, headers=system.auth())
        assert resp.status_code == 422, (change, resp.text)
        error = resp.json()["error"]
        assert field in {f["field"] for f in error.get("fields") or []}, (change, error)
        assert error["hint"], error
        gone = await system.http.get(f"{API}/{body['id']}", headers=system.auth())
        assert gone.status_code in (404, 422), gone.text

    refused = await system.http.post(API, json=good, headers=system.auth(viewer))
    assert refused.status_code == 403
    assert (await system.http.get(f"{API}/{good['id']}", headers=system.auth())).status_code == 404
    made = await system.http.post(API, json=good, headers=system.auth())
    assert made.status_code == 201, made.text
    again = await system.http.post(API, json=good, headers=system.auth())
    assert again.status_code == 409, again.text
    seen = await system.http.get(f"{API}/{good['id']}", headers=system.auth(viewer))
    assert seen.status_code == 200

    unknown = new_id()
    for method, path, body in [
        ("GET", "", None),
        ("PUT", "", {k: v for k, v in good.items() if k != "id"}),
        ("POST", "/pause", {}),
        ("POST", "/unpause", {}),
        ("POST", "/trigger", {}),
        (
            "POST",
            "/backfill",
            {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-02T00:00:00Z"},
        ),
        ("DELETE", "", None),
    ]:
        resp = await system.http.request(
            method, f"{API}/{unknown}{path}", json=body, headers=system.auth()
        )
        assert resp.status_code == 404, (method, path, resp.text)
        assert unknown in resp.json()["error"]["message"]
    too_long = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-02-01T00:00:00Z"}
    resp = await system.http.post(
        f"{API}/{good['id']}/backfill", json=too_long, headers=system.auth()
    )
    assert resp.status_code == 422


async def test_the_systems_own_schedules_are_shown_and_paused_but_not_replaced(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(worker=False)
    name = f"system-t{uuid.uuid4().hex[:8]}"
    action = ScheduleActionStartWorkflow(
        "component-health-check",
        HealthCheckInput(rounds=2),
        id=schedule_id(name),
        task_queue=system.settings.task_queue,
    )
    every = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=5))])
    await system.temporal.create_schedule(schedule_id(name), Schedule(action=action, spec=every))
    shown = await describe(system, name)
    assert shown["spec"]["intervals"] == [{"every": 300.0, "offset": 0.0}]
    assert (shown["type"], shown["input"]["rounds"]) == ("component-health-check", 2)
    replaced = await system.http.put(
        f"{API}/{name}",
        json={"type": "component-health-check", "spec": HOURLY},
        headers=system.auth(),
    )
    assert replaced.status_code == 409 and "system's own" in replaced.json()["error"]["message"]
    assert (await system.http.delete(f"{API}/{name}", headers=system.auth())).status_code == 409
    paused = await system.http.post(f"{API}/{name}/pause", json={}, headers=system.auth())
    assert paused.json()["note"] == "paused by apikey:admin"
