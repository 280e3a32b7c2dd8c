"""`/api/v1/stop-the-line`: the global switch that halts every automated start (scheduled
deployments, event routes, promotions) at once, with its reason and who set it
(docs/stop-the-line.md)."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import Operator, Viewer
from api.deps import SessionDep
from api.openapi import errors
from api.services.line_stops import LineStops, clear_stop, list_stops, set_stop
from core.models.line_stops import LineStop, LineStopRequest

router = APIRouter(prefix="/api/v1/stop-the-line", tags=["stop the line"])


@router.get("", response_model=LineStops)
async def get_stops(_: Viewer, session: SessionDep) -> LineStops:
    """The stops in force: the global one (`stopped`) and each pipeline's own."""
    return await list_stops(session)


@router.put("", response_model=LineStop)
async def stop_the_line(
    body: LineStopRequest, principal: Operator, session: SessionDep
) -> LineStop:
    """Stop the line: from now on schedules, event routes and promotion pipelines start
    nothing (each refusal names this reason, who set it and when); running deployments go
    on, and people can still deploy by hand. Setting it again re-words it (and records the
    new setter). Audited."""
    return await set_stop(session, principal, body)


@router.delete("", response_model=LineStop, responses=errors(404))
async def restart_the_line(principal: Operator, session: SessionDep) -> LineStop:
    """Clear the global stop; the answer is the stop that was in force. 404 when none is set
    (nothing is cleared or audited). Automation picks up at its next run: a scheduled run
    skipped while stopped is not made up."""
    return await clear_stop(session, principal)
