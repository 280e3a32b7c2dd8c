"""The notification delivery workflow on the time-skipping server, its activities replaced by
name: messages leave in order, a refusing receiver is retried with backoff until it accepts,
and a message that fails until its deadline is given up without holding back the next."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.models.notifications import (
    DELIVER_ACTIVITY,
    GIVE_UP_ACTIVITY,
    PENDING_ACTIVITY,
    WAKE_SIGNAL,
    DeliverRequest,
    DeliveryWorkflowInput,
    GiveUpRequest,
    PendingBatch,
    PendingMessage,
    PendingRequest,
)
from tests.support import wait_for
from workflows.notifications import NotificationDeliveryWorkflow


@dataclass
class FakeOutbox:
    """The store and the receiver in one: `refusals[id]` answers before acceptance (None:
    never accepts)."""

    pending: list[str] = field(default_factory=list)
    refusals: dict[str, int | None] = field(default_factory=dict)
    attempts: dict[str, list[float]] = field(default_factory=dict)
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    reads: int = 0
    gone: bool = False
    window: timedelta = timedelta(hours=24)

    def activities(self) -> list[object]:
        @activity.defn(name=PENDING_ACTIVITY)
        async def pending(req: PendingRequest) -> PendingBatch:
            self.reads += 1
            if self.gone or (not self.pending and self.reads > 1 and not self.refusals):
                return PendingBatch(exists=False)
            now = activity.info().current_attempt_scheduled_time
            return PendingBatch(
                exists=True,
                messages=[
                    PendingMessage(outbox_id=m, sequence=i, deliver_by=now + self.window)
                    for i, m in enumerate(self.pending[: req.limit])
                ],
                initial_interval_seconds=1,
                max_interval_seconds=60,
            )

        @activity.defn(name=DELIVER_ACTIVITY)
        async def deliver(req: DeliverRequest) -> None:
            at = activity.info().current_attempt_scheduled_time.timestamp()
            self.attempts.setdefault(req.outbox_id, []).append(at)
            left = self.refusals.get(req.outbox_id, 0)
            if left is None or left > 0:
                if left is not None:
                    self.refusals[req.outbox_id] = left - 1
                raise ApplicationError("the receiver answered 503", type="ReceiverNotAccepting")
            self.delivered.append(req.outbox_id)
            self.pending.remove(req.outbox_id)
            self.refusals.pop(req.outbox_id, None)

        @activity.defn(name=GIVE_UP_ACTIVITY)
        async def give_up(req: GiveUpRequest) -> None:
            self.failed[req.outbox_id] = req.reason
            self.pending.remove(req.outbox_id)
            self.refusals.pop(req.outbox_id, None)

        return [pending, deliver, give_up]


async def test_messages_leave_in_order_retried_until_accepted_and_a_dead_one_is_given_up(
    env: WorkflowEnvironment,
) -> None:
    outbox = FakeOutbox(
        pending=["m1", "m2", "m3"],
        refusals={"m1": 4, "m2": None, "m3": 0},
        window=timedelta(hours=1),
    )
    queue = str(uuid.uuid4())
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[NotificationDeliveryWorkflow],
        activities=outbox.activities(),
    ):
        done = await env.client.execute_workflow(
            NotificationDeliveryWorkflow.run,
            DeliveryWorkflowInput(subscription_id="ns_1"),
            id=f"notify-{queue}",
            task_queue=queue,
        )
    assert outbox.delivered == ["m1", "m3"]  # m3 was not held back by m2, nor sent before it
    assert done == 3
    # m1: refused four times, each wait longer than the one before (backoff), then accepted.
    at = outbox.attempts["m1"]
    assert len(at) == 5
    waits = [round(b - a) for a, b in zip(at[1:], at[2:], strict=False)]
    assert waits == [1, 2, 4]
    # m2: retried for its hour (waits capped at 60 s), then failed for good with the reason.
    tries = outbox.attempts["m2"]
    assert 55 <= len(tries) <= 75
    assert max(b - a for a, b in zip(tries, tries[1:], strict=False)) <= 61
    # Temporal stops once the next wait would pass the deadline: within a minute of it.
    assert 3540 - 60 <= tries[-1] - tries[0] <= 3600
    assert "deadline" in outbox.failed["m2"] and "503" in outbox.failed["m2"]
    assert outbox.attempts["m3"][0] >= tries[-1]


async def test_a_wake_up_sends_new_messages_and_a_deleted_subscription_ends_the_workflow(
    env: WorkflowEnvironment,
) -> None:
    outbox = FakeOutbox()
    queue = str(uuid.uuid4())
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[NotificationDeliveryWorkflow],
        activities=outbox.activities(),
    ):
        outbox.reads = -100  # an empty outbox is not the end here: only `gone` is
        handle = await env.client.start_workflow(
            NotificationDeliveryWorkflow.run,
            DeliveryWorkflowInput(subscription_id="ns_2"),
            id=f"notify-{queue}",
            task_queue=queue,
        )
        await wait_for(lambda: _value(outbox.reads > -100), what="the first read")
        outbox.pending.append("late")
        await handle.signal(WAKE_SIGNAL)
        await wait_for(lambda: _value(outbox.delivered == ["late"]), what="delivery after wake")
        outbox.gone = True
        await handle.signal(WAKE_SIGNAL)
        assert await handle.result() == 1


async def _value(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
