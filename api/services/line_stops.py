"""Stop the line: operators set and clear the switches (audited in the same transaction), and
automation asks `refuse_if_stopped` before it moves anything (docs/stop-the-line.md).

What the switch halts: starts made by automation (a schedule's run, an event route's start,
a promotion pipeline's step). What it never halts: a person's own deployment or release, and
anything already running (abort it if it must stop too): a hotfix must not wait for the switch.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.services import audit
from core.contracts import DEPLOYMENT_WORKFLOW, RETIRE_WORKFLOW
from core.db import line_stops as store
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models.apikeys import Principal
from core.models.line_stops import GLOBAL_SCOPE, LineStop, LineStopRequest

SET = "line_stop.set"
CLEARED = "line_stop.cleared"
API = "/api/v1/stop-the-line"
# The workflow types that change what runs: automation may not start them while stopped (a
# health check still runs).
HALTED_TYPES = frozenset({DEPLOYMENT_WORKFLOW, RETIRE_WORKFLOW})


class LineStops(BaseModel):
    """The stops in force: `stopped` is true while the global stop is set."""

    stopped: bool = Field(description="whether the global stop is set (everything halts)")
    global_stop: LineStop | None = Field(None, description="the global stop, if set")
    stops: list[LineStop] = Field(
        description="every stop in force, global and per pipeline (`pipeline:<name>`)"
    )


def refusal(stop: LineStop, what: str) -> ConflictError:
    """The 409 of something automation wanted to start while `stop` is in force: it names the
    stop's reason, who set it and when."""
    clear = f"DELETE {API}" if stop.scope == GLOBAL_SCOPE else f"GET {API} lists the stops"
    return ConflictError(
        f"the line is stopped ({stop.scope}): {what} refused; stopped by {stop.set_by} at "
        f"{stop.set_at.isoformat(timespec='seconds')}: {stop.reason}",
        hint=f"an operator clears the stop once it is safe ({clear}); "
        "a person can still deploy by hand meanwhile",
        scope=stop.scope,
        set_by=stop.set_by,
        set_at=stop.set_at.isoformat(),
        stop_reason=stop.reason,
    )


async def refuse_if_stopped(session: AsyncSession, pipeline: str | None, what: str) -> None:
    """Raise a ConflictError (409) naming the stop if the global stop, or `pipeline`'s own, is
    in force; `what` says what was refused ("scheduled deployment of api to prod")."""
    stop = await store.active(session, pipeline)
    if stop is not None:
        raise refusal(stop, what)


def _reason(body: LineStopRequest) -> str:
    reason = body.reason.strip()
    if not reason:
        raise InvalidInputError(
            "a stop needs a reason",
            hint="say why the line is stopped: everyone refused by it reads it",
            fields=[{"field": "body.reason", "message": "blank"}],
        )
    return reason


async def list_stops(session: AsyncSession) -> LineStops:
    """Every stop in force, the global one first."""
    stops = await store.all_stops(session)
    stops.sort(key=lambda s: (s.scope != GLOBAL_SCOPE, s.scope))
    found = next((s for s in stops if s.scope == GLOBAL_SCOPE), None)
    return LineStops(stopped=found is not None, global_stop=found, stops=stops)


async def set_stop(
    session: AsyncSession, principal: Principal, body: LineStopRequest, scope: str = GLOBAL_SCOPE
) -> LineStop:
    """Set (or re-word) the stop of `scope`, recorded as set by the caller, now; audited."""
    stop = await store.put(session, scope, _reason(body), principal.initiator)
    await audit.commit(session, principal, SET, scope, reason=stop.reason)
    return stop


async def clear_stop(
    session: AsyncSession, principal: Principal, scope: str = GLOBAL_SCOPE
) -> LineStop:
    """Clear the stop of `scope` (404 when none is set: nothing to clear, nothing audited);
    the stop that was in force."""
    stop = await store.remove(session, scope)
    if stop is None:
        raise NotFoundError(
            f"no stop is set for {scope}",
            hint=f"GET {API} lists the stops in force; someone may have cleared it already",
        )
    await audit.commit(
        session,
        principal,
        CLEARED,
        scope,
        reason=stop.reason,
        set_by=stop.set_by,
        set_at=stop.set_at.isoformat(),
    )
    return stop
