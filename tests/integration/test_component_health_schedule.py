"""The default health-check schedule on the real Temporal dev server: made once, updated when
the interval changes, left paused when an operator paused it, removed by 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.service import RPCError

from core.contracts import HEALTH_CHECK_WORKFLOW, INITIATOR
from core.default_schedules import (
    HEALTH_CHECK_SCHEDULE_ID,
    Outcome,
    ensure_default_schedules,
    ensure_health_check_schedule,
)
from core.settings import Settings
from core.temporal import connect


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[Client]:
    """A client of the session's server; the default schedule is gone after the test."""
    connected = await connect(make_settings())
    yield connected
    try:
        await connected.get_schedule_handle(HEALTH_CHECK_SCHEDULE_ID).delete()
    except RPCError:
        pass  # the test removed it itself


async def test_made_once_then_follows_the_interval_and_keeps_a_pause(
    client: Client, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(health_check_every_seconds=60)
    [made] = await ensure_default_schedules(client, settings)
    assert (made.schedule_id, made.outcome) == (HEALTH_CHECK_SCHEDULE_ID, Outcome.CREATED)

    handle = client.get_schedule_handle(HEALTH_CHECK_SCHEDULE_ID)
    desc = await handle.describe()
    assert [i.every for i in desc.schedule.spec.intervals] == [timedelta(seconds=60)]
    assert desc.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    assert "health_check_every_seconds" in (desc.schedule.state.note or "")
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == HEALTH_CHECK_WORKFLOW
    assert action.task_queue == settings.task_queue
    assert action.typed_search_attributes.get(INITIATOR) == "schedule:system-health-check"
    assert (await desc.memo())["created_by"] == "system:default-schedules"

    # Again (a second worker, a restart): nothing new.
    again = await ensure_health_check_schedule(client, settings)
    assert again.outcome is Outcome.UNCHANGED
    listed = [s.id async for s in await client.list_schedules()]
    assert listed.count(HEALTH_CHECK_SCHEDULE_ID) <= 1  # the list lags; never two
    assert (await handle.describe()).info.created_at == desc.info.created_at

    # An operator pauses it; a new interval changes the interval only.
    await handle.pause(note="paused by the on-call during maintenance")
    faster = make_settings(health_check_every_seconds=30, task_queue=settings.task_queue)
    assert (await ensure_health_check_schedule(client, faster)).outcome is Outcome.UPDATED
    updated = await handle.describe()
    assert [i.every for i in updated.schedule.spec.intervals] == [timedelta(seconds=30)]
    assert updated.schedule.state.paused
    assert updated.schedule.state.note == "paused by the on-call during maintenance"
    assert (await ensure_health_check_schedule(client, faster)).outcome is Outcome.UNCHANGED
    assert (await handle.describe()).schedule.state.paused

    # A worker on another task queue takes the runs over.
    moved = make_settings(health_check_every_seconds=30)
    assert (await ensure_health_check_schedule(client, moved)).outcome is Outcome.UPDATED
    action = (await handle.describe()).schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.task_queue == moved.task_queue

    # 0 removes it; once gone, 0 changes nothing.
    off = make_settings(health_check_every_seconds=0)
    assert (await ensure_health_check_schedule(client, off)).outcome is Outcome.DELETED
    with pytest.raises(RPCError):
        await handle.describe()
    assert (await ensure_health_check_schedule(client, off)).outcome is Outcome.ABSENT
