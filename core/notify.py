"""Emitting a notification event: the one door every producer uses (the deployment's record
activity, scheduled runs, the health state).

`emit` runs in the caller's transaction: it writes one outbox row per matching subscription,
so an event is kept exactly when the state change that caused it is. After the commit the
caller passes the returned subscription ids to `wake`, which starts or signals their delivery
workflows; a lost wake-up only delays a delivery (the delivery workflow also looks again)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.client import Client

from core.db import notifications as store
from core.db.notifications_tables import OutboxRow
from core.db.tables import utcnow
from core.ids import notification_workflow_id
from core.models.notifications import (
    DELIVERY_WORKFLOW,
    WAKE_SIGNAL,
    DeliveryWorkflowInput,
    EventType,
    NotificationStatus,
)

log = logging.getLogger(__name__)

MAX_EVENT_ID_LENGTH = 200
DEFAULT_TASK_QUEUE = "r2c-main"


def message_id() -> str:
    """A message's webhook-id: `msg_` and 32 hex digits, stable over its retries."""
    return f"msg_{uuid.uuid4().hex}"


async def emit(
    session: AsyncSession,
    event_type: str,
    *,
    event_id: str,
    subject: str,
    data: dict[str, Any],
    component: str | None = None,
    environment: str | None = None,
) -> list[str]:
    """Queue `event_type` (for example `deployment.succeeded`) for every subscription that
    wants it; `event_id` is unique per event (a retried producer emits nothing twice).
    Returns the ids of the subscriptions to wake after the commit (those that hold the event,
    including from an earlier try)."""
    kind = EventType(event_type)  # a producer's typo fails loudly, not silently
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise ValueError(f"event_id longer than {MAX_EVENT_ID_LENGTH}: {event_id[:60]}...")
    wanted = await store.matching(session, kind.value, component, environment)
    if not wanted:
        return []
    queued = await store.already_queued(session, event_id)
    now = utcnow()
    payload = {
        "type": kind.value,
        "id": event_id,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "subject": subject,
        "data": data,
    }
    woken: list[str] = []
    for sub in wanted:
        woken.append(sub.id)  # a retried producer wakes again: its first wake-up may be lost
        if sub.id in queued:
            continue
        session.add(
            OutboxRow(
                id=message_id(),
                subscription_id=sub.id,
                sequence=await store.take_sequence(session, sub.id),
                event_id=event_id,
                event_type=kind.value,
                payload=payload,
                status=NotificationStatus.PENDING.value,
                attempts=0,
                created_at=now,
            )
        )
    return woken


async def wake(
    client: Client, subscription_ids: list[str], *, task_queue: str | None = None
) -> None:
    """Start or nudge the delivery workflow of each subscription (signal-with-start). The task
    queue is the calling activity's unless given. A failure is logged, not raised: the
    messages are committed, and the delivery workflow looks again on its own."""
    if not subscription_ids:
        return
    queue = task_queue or (activity.info().task_queue if activity.in_activity() else None)
    for sid in dict.fromkeys(subscription_ids):
        try:
            await client.start_workflow(
                DELIVERY_WORKFLOW,
                DeliveryWorkflowInput(subscription_id=sid),
                id=notification_workflow_id(sid),
                task_queue=queue or DEFAULT_TASK_QUEUE,
                start_signal=WAKE_SIGNAL,
                static_summary=f"deliver notifications of subscription {sid}",
            )
        except Exception:  # the outbox keeps the messages; the next wake-up finds them
            log.warning("could not wake the delivery of subscription %s", sid, exc_info=True)
