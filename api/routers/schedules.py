"""`/api/v1/schedules`: Temporal Schedules that start a workflow type with a checked input."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from api.auth import Operator, Viewer
from api.deps import GatewayDep, SessionDep, SettingsDep
from api.openapi import errors
from api.scope_checks import check_input, readable_target, target_of_input
from api.services.schedules import ScheduleService
from core.models.apikeys import Role
from core.models.schedules import (
    SCHEDULE_PATTERN,
    BackfillBody,
    NoteBody,
    ScheduleCreate,
    ScheduleDefinition,
    SchedulePage,
    ScheduleView,
    TriggerBody,
)

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])

ScheduleId = Annotated[str, Path(pattern=SCHEDULE_PATTERN, max_length=63)]


async def _service(
    session: SessionDep, gateway: GatewayDep, settings: SettingsDep
) -> ScheduleService:
    return ScheduleService(session, gateway, settings)


Schedules = Annotated[ScheduleService, Depends(_service)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleView,
    responses=errors(409, 502),
)
async def create_schedule(
    body: ScheduleCreate, principal: Operator, service: Schedules
) -> ScheduleView:
    """Create a Temporal Schedule that starts `type` with `input` (checked now, as
    POST /api/v1/orchestration/workflows checks it) at the times of `spec`. Runs carry the
    search attribute `Initiator = schedule:<id>`. A scheduled `deployment` goes through the
    same lock, policies and record as any deployment: a busy target or a refusing policy
    makes that run `skipped: <reason>`, not a failure. Scheduled deployments take no `env`."""
    check_input(principal, Role.OPERATOR, body.input)
    return await service.create(principal, body)


@router.get("", response_model=SchedulePage, responses=errors(502))
async def list_schedules(principal: Viewer, service: Schedules) -> SchedulePage:
    """Every schedule (that the caller may read), with its next run times and counts (runs:
    GET one schedule)."""
    page = await service.page()
    if not principal.reads_everything:
        page.items = [s for s in page.items if readable_target(principal, target_of_input(s.input))]
    return page


@router.get("/{schedule_id}", response_model=ScheduleView, responses=errors(502))
async def get_schedule(schedule_id: ScheduleId, _: Viewer, service: Schedules) -> ScheduleView:
    """The schedule: its spec, next 5 run times, last runs with their outcomes, counts."""
    return await service.get(schedule_id)


@router.put("/{schedule_id}", response_model=ScheduleView, responses=errors(409, 502))
async def replace_schedule(
    schedule_id: ScheduleId, body: ScheduleDefinition, principal: Operator, service: Schedules
) -> ScheduleView:
    """Replace the schedule's type, input, spec, policies and state (its id and creator
    stay). The system's own schedules (`system-...`) are made by their settings: 409."""
    check_input(principal, Role.OPERATOR, body.input)
    return await service.replace(principal, schedule_id, body)


@router.post("/{schedule_id}/pause", response_model=ScheduleView, responses=errors(502))
async def pause_schedule(
    schedule_id: ScheduleId, principal: Operator, service: Schedules, body: NoteBody | None = None
) -> ScheduleView:
    """Stop starting runs until unpaused; the note says why (shown in the Temporal UI)."""
    return await service.pause(principal, schedule_id, (body or NoteBody()).note, paused=True)


@router.post("/{schedule_id}/unpause", response_model=ScheduleView, responses=errors(502))
async def unpause_schedule(
    schedule_id: ScheduleId, principal: Operator, service: Schedules, body: NoteBody | None = None
) -> ScheduleView:
    """Start runs again at the spec's times."""
    return await service.pause(principal, schedule_id, (body or NoteBody()).note, paused=False)


@router.post("/{schedule_id}/trigger", status_code=status.HTTP_202_ACCEPTED, responses=errors(502))
async def trigger_schedule(
    schedule_id: ScheduleId,
    principal: Operator,
    service: Schedules,
    body: TriggerBody | None = None,
) -> Response:
    """Start a run now; `overlap` overrides the schedule's policy for this one."""
    await service.trigger(principal, schedule_id, (body or TriggerBody()).overlap)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/{schedule_id}/backfill", status_code=status.HTTP_202_ACCEPTED, responses=errors(502))
async def backfill_schedule(
    schedule_id: ScheduleId, body: BackfillBody, principal: Operator, service: Schedules
) -> Response:
    """Take the runs of the times from start_at to end_at (both included) now, as if they
    were passing (at most 7 days; Temporal buffers a bounded number of starts)."""
    await service.backfill(principal, schedule_id, body)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(502))
async def delete_schedule(
    schedule_id: ScheduleId, principal: Operator, service: Schedules
) -> Response:
    """Delete the schedule; runs it started go on. The system's own schedules: 409."""
    await service.delete(principal, schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
