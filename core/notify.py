# ruff: noqa: ARG001  (a stub until its work lands: remove this line then)
"""Emitting a notification event: the one door every producer uses (the deployment's record
activity, scheduled runs, the health state). Filled in by the notifications work.

`emit` runs in the caller's transaction: it writes one outbox row per matching subscription,
so an event is kept exactly when the state change that caused it is. After the commit the
caller passes the returned subscription ids to `wake`, which starts or signals their delivery
workflows; a lost wake-up only delays a delivery (the delivery workflow also looks again)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client


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
    Returns the ids of the subscriptions to wake after the commit."""
    return []


async def wake(client: Client, subscription_ids: list[str]) -> None:
    """Start or nudge the delivery workflow of each subscription."""
    return None
