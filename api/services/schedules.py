"""Schedules: Temporal Schedules that start a workflow type with a checked input; every change
audited once Temporal has made it (as the orchestration service does for starts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleRange,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowFailureError,
)

from api.gateway import Gateway, mapped
from api.services import audit
from api.services.orchestration import checked_start, status_of
from api.services.schedules_temporal import (
    CREATED_BY_MEMO,
    DEFINITION_MEMO,
    OVERLAP,
    OVERLAP_NAMES,
    build,
)
from core.db import components
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.ids import SCHEDULE_PREFIX, schedule_id
from core.models.apikeys import Principal
from core.models.deployments import DeploymentRequest
from core.models.schedules import (
    NEXT_RUNS_SHOWN,
    RECENT_RUNS_SHOWN,
    RESERVED_SCHEDULE_PREFIXES,
    SCHEDULED_START_WORKFLOW,
    BackfillBody,
    CalendarSpec,
    IntervalSpec,
    ScheduleCounts,
    ScheduleCreate,
    ScheduleDefinition,
    ScheduledRun,
    ScheduledStartResult,
    SchedulePage,
    ScheduleSpec,
    ScheduleView,
)
from core.schedule_calendar import BOUNDS
from core.settings import Settings

RPC_TIMEOUT = timedelta(seconds=10)
MAX_LISTED = 200


class ScheduleService:
    """Creates, reads, steers and deletes schedules."""

    def __init__(self, session: AsyncSession, gateway: Gateway, settings: Settings) -> None:
        self.session = session
        self.gateway = gateway
        self.settings = settings

    def _handle(self, name: str) -> ScheduleHandle:
        return self.gateway.client.get_schedule_handle(schedule_id(name))

    async def create(self, principal: Principal, body: ScheduleCreate) -> ScheduleView:
        """Create the schedule; 409 when the id is taken."""
        schedule = build(
            body.id,
            body,
            await self._checked(principal, body),
            created_by=principal.initiator,
            role=principal.role.value,
            task_queue=self.settings.task_queue,
        )
        try:
            async with mapped(f"schedule {body.id!r}"):
                await self.gateway.client.create_schedule(
                    schedule_id(body.id),
                    schedule,
                    memo={CREATED_BY_MEMO: principal.initiator},
                    rpc_timeout=RPC_TIMEOUT,
                )
        except ScheduleAlreadyRunningError:
            raise ConflictError(
                f"schedule {body.id!r} exists",
                hint="choose another id, or PUT /api/v1/schedules/{id} to replace it",
            ) from None
        await audit.commit(self.session, principal, "schedule.created", body.id, type=body.type)
        return await self.get(body.id, runs=False)

    async def replace(
        self, principal: Principal, name: str, body: ScheduleDefinition
    ) -> ScheduleView:
        """Replace everything about the schedule but its id and creator."""
        _own(name, "replaced")
        checked = await self._checked(principal, body)
        description = await self._describe(name)
        created_by = str((await description.memo()).get(CREATED_BY_MEMO) or "")
        schedule = build(
            name,
            body,
            checked,
            created_by=created_by or principal.initiator,
            role=principal.role.value,
            task_queue=self.settings.task_queue,
        )

        def updater(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        async with mapped(f"schedule {name!r}"):
            await self._handle(name).update(updater, rpc_timeout=RPC_TIMEOUT)
        await audit.commit(self.session, principal, "schedule.updated", name, type=body.type)
        return await self.get(name, runs=False)

    async def pause(self, principal: Principal, name: str, note: str, paused: bool) -> ScheduleView:
        handle = self._handle(name)
        # Without a note of the caller's, the note says who (the SDK's would name the SDK).
        shown = note or f"{'paused' if paused else 'unpaused'} by {principal.initiator}"
        async with mapped(f"schedule {name!r}"):
            if paused:
                await handle.pause(note=shown, rpc_timeout=RPC_TIMEOUT)
            else:
                await handle.unpause(note=shown, rpc_timeout=RPC_TIMEOUT)
        action = "schedule.paused" if paused else "schedule.unpaused"
        await audit.commit(self.session, principal, action, name, note=note or None)
        return await self.get(name, runs=False)

    async def trigger(self, principal: Principal, name: str, overlap: str | None) -> None:
        """Start a run now (with `overlap` instead of the schedule's policy, if given)."""
        policy = OVERLAP[overlap] if overlap else None  # type: ignore[index]
        async with mapped(f"schedule {name!r}"):
            await self._handle(name).trigger(overlap=policy, rpc_timeout=RPC_TIMEOUT)
        await audit.commit(self.session, principal, "schedule.triggered", name, overlap=overlap)

    async def backfill(self, principal: Principal, name: str, body: BackfillBody) -> None:
        """Take the runs of a past (or future) period as if its times were passing now."""
        policy = OVERLAP[body.overlap] if body.overlap else None
        backfill = ScheduleBackfill(start_at=body.start_at, end_at=body.end_at, overlap=policy)
        async with mapped(f"schedule {name!r}"):
            await self._handle(name).backfill(backfill, rpc_timeout=RPC_TIMEOUT)
        await audit.commit(
            self.session,
            principal,
            "schedule.backfilled",
            name,
            start_at=body.start_at.isoformat(),
            end_at=body.end_at.isoformat(),
        )

    async def delete(self, principal: Principal, name: str) -> None:
        """Delete the schedule; runs it started go on."""
        _own(name, "deleted")
        async with mapped(f"schedule {name!r}"):
            await self._handle(name).delete(rpc_timeout=RPC_TIMEOUT)
        await audit.commit(self.session, principal, "schedule.deleted", name)

    async def get(self, name: str, *, runs: bool = True) -> ScheduleView:
        """The schedule, its next run times and (with `runs`) its last runs and outcomes."""
        description = await self._describe(name)
        view = await _view(self.settings, name, description)
        if runs:
            view.last_runs = await self._last_runs(description)
        return view

    async def page(self) -> SchedulePage:
        """Every schedule made through this API (ids under `core.ids.SCHEDULE_PREFIX`), by id;
        Temporal's list is eventually consistent, so a schedule just made may show a moment
        later."""
        names = []
        async with mapped("the schedule list"):
            async for entry in await self.gateway.client.list_schedules(rpc_timeout=RPC_TIMEOUT):
                if entry.id.startswith(SCHEDULE_PREFIX):
                    names.append(entry.id.removeprefix(SCHEDULE_PREFIX))
                if len(names) >= MAX_LISTED:
                    break
        items = []
        for name in sorted(names):
            try:
                items.append(await self.get(name, runs=False))
            except NotFoundError:  # deleted since the list was made
                continue
        return SchedulePage(items=items)

    async def _describe(self, name: str) -> ScheduleDescription:
        try:
            async with mapped(f"schedule {name!r}"):
                return await self._handle(name).describe(rpc_timeout=RPC_TIMEOUT)
        except NotFoundError:
            raise NotFoundError(
                f"no schedule {name!r}", hint="GET /api/v1/schedules lists them"
            ) from None

    async def _checked(self, principal: Principal, body: ScheduleDefinition) -> BaseModel:
        """The input as the type's start would check it, plus what a schedule adds: a run
        that would fail every time is refused now, not at every fire."""
        _, checked = checked_start(principal, body.type, body.input, "scheduling")
        if isinstance(checked, DeploymentRequest):
            await self._schedulable_deployment(checked)
        return checked

    async def _schedulable_deployment(self, req: DeploymentRequest) -> None:
        # `env` values may be credentials (the API shows them to admins only, see
        # api/services/redaction.py). A schedule keeps its input in Temporal for as long as it
        # lives and hands it to every run, so a scheduled deployment carries none: values
        # that change by environment belong in the configuration (secrets in Vault, as
        # references), which each scheduled deployment reads when it starts.
        if req.env:
            raise InvalidInputError(
                "a scheduled deployment cannot carry `env` values",
                hint="put them in the configuration (PUT /api/v1/configuration/{key}, "
                "`secret: true` for secrets): every scheduled deployment runs the latest",
                fields=[{"field": "input.env", "message": "not allowed in a schedule"}],
            )
        if req.freeze_override:
            raise InvalidInputError(
                "a scheduled deployment cannot override a freeze",
                hint="an override is a person's decision for one deployment; start it by hand",
                fields=[{"field": "input.freeze_override", "message": "not allowed"}],
            )
        try:
            await components.get_row(self.session, req.component)
        except NotFoundError:
            raise InvalidInputError(
                f"no component {req.component!r}",
                hint="register it first: POST /api/v1/components",
                fields=[{"field": "input.component", "message": "no such component"}],
            ) from None

    async def _last_runs(self, description: ScheduleDescription) -> list[ScheduledRun]:
        recent = list(reversed(description.info.recent_actions))[:RECENT_RUNS_SHOWN]
        out = []
        for action in recent:
            started = action.action
            if not isinstance(started, ScheduleActionExecutionStartWorkflow):
                continue
            run = ScheduledRun(
                workflow_id=started.workflow_id,
                run_id=started.first_execution_run_id,
                scheduled_at=action.scheduled_at,
                started_at=action.started_at,
                status="unknown",
            )
            await self._outcome(run)
            out.append(run)
        return out

    async def _outcome(self, run: ScheduledRun) -> None:
        try:
            desc = await self.gateway.describe(run.workflow_id, run.run_id)
        except NotFoundError:  # past the namespace's retention
            return
        run.status = status_of(desc)
        if desc.workflow_type != SCHEDULED_START_WORKFLOW:
            return
        if run.status == "completed":
            try:
                raw = await self.gateway.result(run.workflow_id, run.run_id)
                run.outcome = ScheduledStartResult.model_validate(raw).describe()
            except (WorkflowFailureError, ValueError):
                run.outcome = None
        elif run.status == "failed":
            run.outcome = "failed to start"


async def _view(settings: Settings, name: str, description: ScheduleDescription) -> ScheduleView:
    schedule, info = description.schedule, description.info
    raw_action = description.raw_description.schedule.action.start_workflow
    action_memo = await description.data_converter._decode_memo(raw_action.memo)
    written = action_memo.get(DEFINITION_MEMO)
    written = written if isinstance(written, dict) else {}
    if "spec" not in written:  # made elsewhere (the system's default schedules)
        written = {"spec": await _spec_of(description), "input": await _input_of(description)}
    created_by = (await description.memo()).get(CREATED_BY_MEMO) or action_memo.get(CREATED_BY_MEMO)
    policy = schedule.policy
    catchup = policy.catchup_window.total_seconds() if policy.catchup_window else None
    ui = f"{settings.temporal_ui}/namespaces/{settings.temporal_namespace}/schedules"
    running = [
        r.workflow_id
        for r in info.running_actions
        if isinstance(r, ScheduleActionExecutionStartWorkflow)
    ]
    return ScheduleView(
        id=name,
        type=str(written.get("type") or _workflow_name(schedule.action)),
        input=written.get("input") or {},
        spec=written.get("spec"),
        overlap=OVERLAP_NAMES.get(policy.overlap, "skip"),
        catchup_window=catchup,
        pause_on_failure=policy.pause_on_failure,
        paused=schedule.state.paused,
        note=schedule.state.note or "",
        created_by=str(created_by) if created_by else None,
        created_at=info.created_at,
        updated_at=info.last_updated_at,
        next_runs=list(info.next_action_times[:NEXT_RUNS_SHOWN]),
        running=running,
        last_runs=[],
        counts=ScheduleCounts(
            actions=info.num_actions,
            skipped_overlap=info.num_actions_skipped_overlap,
            missed_catchup_window=info.num_actions_missed_catchup_window,
        ),
        temporal_ui=f"{ui}/{schedule_id(name)}",
    )


async def _input_of(description: ScheduleDescription) -> dict[str, Any]:
    raw = description.raw_description.schedule.action.start_workflow.input.payloads
    try:
        values = await description.data_converter.decode(raw)
    except Exception:  # a payload this API cannot decode: show none rather than fail
        return {}
    return values[0] if values and isinstance(values[0], dict) else {}


def _own(name: str, what: str) -> None:
    if name.startswith(RESERVED_SCHEDULE_PREFIXES):
        raise ConflictError(
            f"schedule {name!r} is the system's own: its settings make it, it cannot be {what}",
            hint="pause it (POST /api/v1/schedules/{id}/pause); its note names the setting "
            "that changes or removes it",
        )


async def _spec_of(description: ScheduleDescription) -> ScheduleSpec:
    """The spec of a schedule made elsewhere, read back from Temporal (cron strings come
    back as calendars)."""
    spec = description.schedule.spec
    return ScheduleSpec(
        intervals=[
            IntervalSpec(
                every=i.every.total_seconds(),
                offset=i.offset.total_seconds() if i.offset else 0,
            )
            for i in spec.intervals
        ],
        calendars=[
            CalendarSpec(**{f: _ranges(getattr(c, f)) for f in BOUNDS}, comment=c.comment or "")
            for c in spec.calendars
        ],
        time_zone=spec.time_zone_name,
        jitter=spec.jitter.total_seconds() if spec.jitter else 0,
        start_at=spec.start_at,
        end_at=spec.end_at,
    )


def _ranges(ranges: Sequence[ScheduleRange]) -> str:
    parts = []
    for r in ranges:
        text = str(r.start) if r.end <= r.start else f"{r.start}-{r.end}"
        parts.append(f"{text}/{r.step}" if r.step > 1 else text)
    return ",".join(parts) or "*"


def _workflow_name(action: Any) -> str:
    """The type of a schedule made elsewhere (no memo of ours): what its action starts."""
    return str(getattr(action, "workflow", ""))
