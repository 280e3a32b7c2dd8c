"""The activity through which workflows add an event to the audit trail.

Some actions never pass through the API: a signal sent with "Send signal" in the Temporal UI
steers a deployment directly. The workflow records each one through this activity, which
appends to the same hash chain, through the same store code (`core.db.audit.record`, signed and
linked when the transaction commits), as the API's own events.

Idempotent under retries: the workflow names each event with a key of its own (deterministic:
the same on every attempt and on replay), stored as the event's `request_id`; an attempt that
finds an event with that key already written does nothing. The key is looked for among the
recent events only (the `at` column is indexed, `request_id` is not): a retry comes within the
activity's schedule-to-close bound, far inside the window.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from core.db import audit
from core.db.tables import AuditEventRow, utcnow

AUDIT_ACTIVITY = "record-audit-event"
# How far back a retry looks for the event an earlier attempt wrote (the workflow bounds the
# activity's retries to minutes).
LOOKBACK = timedelta(hours=1)

DetailValue = StrictBool | StrictInt | Annotated[str, Field(max_length=600)] | None


class AuditEventRequest(BaseModel):
    """One event, as a workflow asks for it: no secret belongs here (it lands in the workflow's
    history as well as in the trail)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=8, max_length=64, description="stored as request_id; unique")
    actor: str = Field(min_length=1, max_length=120)
    action: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    target: str = Field(min_length=1, max_length=255)
    detail: dict[Annotated[str, Field(max_length=40)], DetailValue] = Field(
        default_factory=dict, max_length=16
    )


async def _already_recorded(session: AsyncSession, key: str) -> bool:
    query = (
        select(AuditEventRow.id)
        .where(AuditEventRow.at >= utcnow() - LOOKBACK, AuditEventRow.request_id == key)
        .limit(1)
    )
    return (await session.execute(query)).first() is not None


class AuditActivities:
    """Holds the store's sessions (opened with the audit keys: `core.db.engine.make_engine`)."""

    def __init__(self, sessions: async_sessionmaker[Any]) -> None:
        self.sessions = sessions

    @activity.defn(name=AUDIT_ACTIVITY)
    async def record_event(self, req: AuditEventRequest) -> bool:
        """Append the event to the chain; False if an earlier attempt already did."""
        async with self.sessions() as session:
            if await _already_recorded(session, req.key):
                return False
            await audit.record(
                session,
                actor=req.actor,
                action=req.action,
                target=req.target,
                detail={k: v for k, v in req.detail.items() if v is not None},
                request_id=req.key,
            )
            await session.commit()
        return True


def audit_activities(sessions: async_sessionmaker[Any]) -> list[Callable[..., Any]]:
    """The activities the worker registers for the audit trail."""
    return [AuditActivities(sessions).record_event]
