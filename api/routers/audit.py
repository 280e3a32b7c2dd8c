"""`/api/v1/audit`: who did what, newest first, filtered and paged; and a walk of the chain."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api.auth import Admin
from api.deps import SessionDep
from api.openapi import errors
from core.db import audit
from core.db.tables import AuditEventRow
from core.errors import InvalidInputError

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

NEXT_CURSOR = "X-Next-Cursor"
_CURSOR = r"^[1-9][0-9]{0,17}$"


class AuditEvent(BaseModel):
    """One audit event with its place in the hash chain (docs/audit.md defines the hashes)."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    request_id: str | None
    prev_hash: str | None = Field(None, description="the hash of the event before this one")
    hash: str | None = Field(None, description="SHA-256 of prev_hash and this event's fields")
    mac: str | None = Field(None, description="HMAC-SHA256 of the hash, with key key_id")
    key_id: str | None = None


def event_of(r: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        id=r.id,
        at=r.at,
        actor=r.actor,
        action=r.action,
        target=r.target,
        detail=r.detail,
        request_id=r.request_id,
        prev_hash=r.prev_hash,
        hash=r.hash,
        mac=r.mac,
        key_id=r.key_id,
    )


def _utc(value: datetime | None, name: str) -> datetime | None:
    # A time without a zone is taken as UTC; any other zone is turned into UTC, since SQLite
    # compares times as the UTC text they are stored as.
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise InvalidInputError(
            f"`{name}` is out of range", hint="give a time between years 1 and 9999 in UTC"
        ) from None


Name = Annotated[str | None, Query(min_length=1, max_length=255)]


@router.get(
    "",
    response_model=list[AuditEvent],
    responses={
        200: {
            "headers": {
                NEXT_CURSOR: {
                    "description": "pass as `cursor` for the next (older) page; absent on "
                    "the last page",
                    "schema": {"type": "string"},
                }
            }
        },
        **errors(422),
    },
)
async def list_events(
    _: Admin,
    session: SessionDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    since: Annotated[datetime | None, Query(description="events at or after this time")] = None,
    until: Annotated[datetime | None, Query(description="events before this time")] = None,
    actor: Name = None,
    action: Name = None,
    target: Name = None,
    cursor: Annotated[
        str | None,
        Query(pattern=_CURSOR, description=f"the {NEXT_CURSOR} header of the previous page"),
    ] = None,
) -> list[AuditEvent]:
    """Audit events, newest first, filtered by time, actor, action and target; a full page
    names the next one in the `X-Next-Cursor` header."""
    where = audit.EventFilter(_utc(since, "since"), _utc(until, "until"), actor, action, target)
    if where.since and where.until and where.since >= where.until:
        raise InvalidInputError(
            "`since` must be before `until`", hint="swap them, or leave one out"
        )
    before = int(cursor) if cursor else None
    rows = await audit.find(session, where, limit=limit + 1, before_id=before)
    if len(rows) > limit:
        rows = rows[:limit]
        response.headers[NEXT_CURSOR] = str(rows[-1].id)
    return [event_of(r) for r in rows]


class BrokenLinkOut(BaseModel):
    id: int = Field(description="the event where the chain first does not hold")
    problem: str = Field(
        description="missing, changed, reordered, bad_mac, unknown_key, unsigned, link or "
        "checkpoint"
    )
    message: str


class ChainVerdict(BaseModel):
    """The outcome of a walk over the whole chain."""

    intact: bool
    checked: int = Field(description="events verified")
    head_id: int | None
    head_hash: str | None = Field(
        None, description="compare with a copy kept elsewhere: a chain cannot show its own end"
    )
    checkpoint_through_id: int | None = Field(
        None, description="the chain starts after this event (older ones were pruned)"
    )
    broken: BrokenLinkOut | None = None
    seconds: float


@router.get("/verify", response_model=ChainVerdict, responses=errors(503))
async def verify_chain(_: Admin, session: SessionDep) -> ChainVerdict:
    """Walk the audit chain from its start (or its checkpoint) and name the first broken link."""
    started = time.perf_counter()
    verdict = await audit.verify(session)
    broken = verdict.broken
    return ChainVerdict(
        intact=verdict.intact,
        checked=verdict.checked,
        head_id=verdict.head_id,
        head_hash=verdict.head_hash,
        checkpoint_through_id=verdict.checkpoint.through_id if verdict.checkpoint else None,
        broken=BrokenLinkOut(id=broken.id, problem=broken.problem.value, message=broken.message)
        if broken
        else None,
        seconds=round(time.perf_counter() - started, 3),
    )
