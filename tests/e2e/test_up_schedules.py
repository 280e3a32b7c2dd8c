"""`r2c up` makes the default health-check schedule, and its runs record component health."""

from __future__ import annotations

import signal
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client, ScheduleActionStartWorkflow

from core.contracts import HEALTH_CHECK_WORKFLOW
from core.default_schedules import HEALTH_CHECK_SCHEDULE_ID
from tests.e2e.up_stack import UpStack
from tests.support import wait_for

WORKFLOWS = "/api/v1/orchestration/workflows"


async def test_up_schedules_health_checks_that_record_component_health(
    up_stack: UpStack,
) -> None:
    up_stack.env["R2C_HEALTH_CHECK_EVERY_SECONDS"] = "5"
    run = up_stack.start()
    assert f"every 5s (Temporal schedule {HEALTH_CHECK_SCHEDULE_ID})" in run.output()

    # The worker made it before it said ready: it exists as soon as the banner is out.
    temporal = await Client.connect(f"127.0.0.1:{up_stack.env['R2C_TEMPORAL_PORT']}")
    desc = await temporal.get_schedule_handle(HEALTH_CHECK_SCHEDULE_ID).describe()
    assert [i.every for i in desc.schedule.spec.intervals] == [timedelta(seconds=5)]
    assert not desc.schedule.state.paused
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == HEALTH_CHECK_WORKFLOW

    key = up_stack.admin_key_file.read_text().strip()
    async with httpx.AsyncClient(
        base_url=up_stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=20
    ) as api:
        idle = {"name": "idle", "runtime": {"command": ["x", "{port}"]}}
        resp = await api.post("/api/v1/components", json=idle)
        assert resp.status_code == 201, resp.text

        async def scheduled_runs() -> list[dict[str, Any]]:
            resp = await api.get(
                WORKFLOWS,
                params={"initiator": "schedule:system-health-check", "status": "completed"},
            )
            assert resp.status_code == 200, resp.text
            items: list[dict[str, Any]] = resp.json()["items"]
            return items

        runs = await wait_for(scheduled_runs, within=40, every=0.5, what="a scheduled run")
        assert all(r["type"] == HEALTH_CHECK_WORKFLOW for r in runs)

        async def health() -> dict[str, Any]:
            value: dict[str, Any] = (await api.get("/api/v1/components/idle")).json()["health"]
            return value

        found = await wait_for(
            health,
            lambda h: h["checked_at"] is not None,
            within=30,
            every=0.5,
            what="a round that covered the new component",
        )
        assert (found["state"], found["reason"]) == ("unknown", "no running instances")
    assert run.stop(signal.SIGTERM) == 0
