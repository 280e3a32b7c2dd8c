"""The delivery of a subscription's notifications: one workflow per subscription sends its
messages one at a time, in the order they were queued, each retried with backoff until the
receiver accepts it or its deadline passes (then it is marked failed and the next one goes).
Woken by a signal when producers queue messages; looks again on its own now and then."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    TimeoutError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from core.models.notifications import (
        DELIVER_ACTIVITY,
        DELIVERY_WORKFLOW,
        GIVE_UP_ACTIVITY,
        PENDING_ACTIVITY,
        URL_REFUSED,
        WAKE_SIGNAL,
        DeliverRequest,
        DeliveryWorkflowInput,
        GiveUpRequest,
        PendingBatch,
        PendingMessage,
        PendingRequest,
    )

# Store reads and writes: retried without end (a store outage must not lose a message), paced.
STORE = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
STORE_TIMEOUT = timedelta(seconds=30)
# One attempt: the POST (at most 60 s, R2C_NOTIFICATION_TIMEOUT_SECONDS) plus the store writes.
ATTEMPT_TIMEOUT = timedelta(seconds=90)
# A message past its deadline still gets this long, so it is tried at least once.
LAST_CHANCE = timedelta(seconds=120)
# Bounds each run's history; the next run starts from the store, which holds all the state.
LOOPS_PER_RUN = 200


@workflow.defn(name=DELIVERY_WORKFLOW)
class NotificationDeliveryWorkflow:
    """Delivers one subscription's messages in order; ends when the subscription is deleted."""

    def __init__(self) -> None:
        self.woken = False

    @workflow.signal(name=WAKE_SIGNAL)
    def wake(self) -> None:
        """New messages were queued (sent by `core.notify.wake`)."""
        self.woken = True

    @workflow.run
    async def run(self, inp: DeliveryWorkflowInput) -> int:
        done = inp.delivered
        for _ in range(LOOPS_PER_RUN):
            # Cleared before reading: a wake-up that arrives during the read is not lost.
            self.woken = False
            batch: PendingBatch = await workflow.execute_activity(
                PENDING_ACTIVITY,
                PendingRequest(subscription_id=inp.subscription_id),
                result_type=PendingBatch,
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE,
                summary="read the pending messages",
            )
            if not batch.exists:
                return done
            for message in batch.messages:
                await self._deliver(inp.subscription_id, message, batch)
                done += 1
            if not batch.messages:
                try:
                    await workflow.wait_condition(
                        lambda: self.woken,
                        timeout=timedelta(seconds=batch.idle_recheck_seconds),
                        timeout_summary="look again for messages",
                    )
                except TimeoutError:
                    pass
            if workflow.info().is_continue_as_new_suggested():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            DeliveryWorkflowInput(subscription_id=inp.subscription_id, delivered=done)
        )

    async def _deliver(
        self, subscription_id: str, message: PendingMessage, batch: PendingBatch
    ) -> None:
        window = max(message.deliver_by - workflow.now(), LAST_CHANCE)
        try:
            await workflow.execute_activity(
                DELIVER_ACTIVITY,
                DeliverRequest(subscription_id=subscription_id, outbox_id=message.outbox_id),
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=window,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=batch.initial_interval_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=batch.max_interval_seconds),
                    non_retryable_error_types=[URL_REFUSED],
                ),
                summary=f"deliver message #{message.sequence}",
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise  # the delivery is being cancelled, not given up
            # Given up (deadline or a refused URL): say why, and let the next message go.
            await workflow.execute_activity(
                GIVE_UP_ACTIVITY,
                GiveUpRequest(
                    subscription_id=subscription_id,
                    outbox_id=message.outbox_id,
                    reason=_describe(err),
                ),
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE,
                summary=f"give up message #{message.sequence}",
            )


def _describe(err: ActivityError) -> str:
    """Why a message was given up: its deadline (Temporal stops retrying when the next wait
    would pass it, so the cause may be the last error itself), or an error never retried."""
    cause = err.cause
    if isinstance(cause, TimeoutError):
        last = cause.cause
        tail = f"; last error: {last.message}" if isinstance(last, ApplicationError) else ""
        return f"not accepted before its deadline{tail}"[:500]
    if isinstance(cause, ApplicationError):
        if cause.non_retryable or cause.type == URL_REFUSED:
            return cause.message[:500]
        return f"not accepted before its deadline; last error: {cause.message}"[:500]
    return str(cause or err)[:500]


NOTIFICATION_WORKFLOWS: Sequence[type] = (NotificationDeliveryWorkflow,)
