"""Promotion pipelines: definitions (created, replaced, deleted; refused while a run is
active), runs (started, read live, acted on), holds released, the pipeline's stop the line.
Every change is audited in the same transaction (docs/pipelines.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.gateway import UPDATE_TIMEOUT, Gateway, StartPolicy, Tags
from api.scope_checks import check
from api.services import audit
from core.db import line_stops
from core.db import pipelines as store
from core.db.pipelines_tables import PipelineRow, PipelineRunRow
from core.db.tables import ComponentRow, utcnow
from core.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from core.models.apikeys import Principal, Role
from core.models.line_stops import LineStop, pipeline_scope
from core.models.pipelines import (
    FINAL_RUN_STATES,
    PIPELINE_WORKFLOW,
    PipelineRequest,
    PipelineSpec,
    RunAction,
    RunActionRequest,
    RunInput,
    RunRequest,
    RunState,
    RunStatus,
    Stage,
    pipeline_workflow_id,
)
from core.settings import Settings


class Verified(BaseModel):
    components: dict[str, str]
    run_id: str
    verified_at: datetime
    rollback: bool = Field(False, description="put back by an automatic rollback")


class Hold(BaseModel):
    reason: str
    set_by: str
    set_at: datetime


class EnvironmentView(BaseModel):
    environment: str
    verified: Verified | None = Field(None, description="the combination verified there now")
    hold: Hold | None = Field(None, description="auto-promotion into it is held")


class RunSummary(BaseModel):
    id: str
    components: dict[str, str]
    state: RunState
    reason: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    propagated_from: str | None = Field(
        None, description="a rollback propagation: the environment whose combination it moved"
    )


class PipelineView(PipelineRequest):
    created_by: str
    created_at: datetime
    updated_at: datetime
    environments: list[EnvironmentView]
    stop: LineStop | None = Field(None, description="the line stop in force for it")
    runs: list[RunSummary] = Field(default_factory=list, description="the newest 20")


class PipelinePage(BaseModel):
    items: list[PipelineView]


class RunView(BaseModel):
    id: str
    pipeline: str
    components: dict[str, str]
    state: RunState
    reason: str | None = None
    initiator: str
    created_at: datetime
    finished_at: datetime | None = None
    status: RunStatus | None = None


def _invalid(message: str, hint: str, field: str) -> InvalidInputError:
    return InvalidInputError(message, hint=hint, fields=[{"field": field, "message": message}])


class PipelineService:
    def __init__(self, session: AsyncSession, gateway: Gateway, settings: Settings) -> None:
        self.session = session
        self.gateway = gateway
        self.settings = settings

    # ------------------------------------------------------------------ definitions

    def _check_environments(self, principal: Principal, spec: PipelineSpec) -> None:
        for stage in spec.stages:
            check(principal, Role.OPERATOR, None, stage.environment)

    async def create(self, principal: Principal, req: PipelineRequest) -> PipelineView:
        self._check_environments(principal, req)
        if await self.session.get(PipelineRow, req.name) is not None:
            raise ConflictError(
                f"pipeline {req.name!r} exists", hint=f"PUT /api/v1/pipelines/{req.name}"
            )
        now = utcnow()
        row = PipelineRow(
            name=req.name,
            spec=PipelineSpec(stages=req.stages).model_dump(mode="json", by_alias=True),
            created_by=principal.initiator,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        await self.session.flush()
        await audit.commit(self.session, principal, "pipeline.created", req.name, spec=row.spec)
        return await self.view(row)

    async def page(self) -> PipelinePage:
        return PipelinePage(items=[await self.view(r) for r in await store.names(self.session)])

    async def get(self, name: str) -> PipelineView:
        return await self.view(await store.get(self.session, name))

    async def _idle(self, name: str) -> PipelineRow:
        row = await store.get(self.session, name)
        # A run whose workflow was terminated from outside never recorded its end: Temporal
        # has the last word on whether it is active.
        active = [
            run
            for run in await store.active_runs(self.session, name)
            if await self.gateway.is_running(run.workflow_id)
        ]
        if active:
            raise ConflictError(
                f"pipeline {name!r} has an active run ({active[0].id})",
                hint=f"abort it first: POST /api/v1/pipelines/{name}/runs/{active[0].id}/abort",
            )
        return row

    async def replace(self, principal: Principal, name: str, spec: PipelineSpec) -> PipelineView:
        self._check_environments(principal, spec)
        row = await self._idle(name)
        self._check_environments(principal, PipelineSpec.model_validate(row.spec))
        row.spec = spec.model_dump(mode="json", by_alias=True)
        row.updated_at = utcnow()
        await audit.commit(self.session, principal, "pipeline.updated", name, spec=row.spec)
        return await self.view(row)

    async def delete(self, principal: Principal, name: str) -> None:
        row = await self._idle(name)
        self._check_environments(principal, PipelineSpec.model_validate(row.spec))
        await store.forget(self.session, name)
        await line_stops.remove(self.session, pipeline_scope(name))
        await self.session.delete(row)
        await audit.commit(self.session, principal, "pipeline.deleted", name)

    async def view(self, row: PipelineRow) -> PipelineView:
        spec = PipelineSpec.model_validate(row.spec)
        holds = await store.holds(self.session, row.name)
        environments = []
        for stage in spec.stages:
            env = stage.environment
            current = await store.current(self.session, row.name, env)
            hold = holds.get(env)
            environments.append(
                EnvironmentView(
                    environment=env,
                    verified=Verified(
                        components=dict(current.components),
                        run_id=current.run_id,
                        verified_at=current.verified_at,
                        rollback=current.rollback,
                    )
                    if current
                    else None,
                    hold=Hold(reason=hold.reason, set_by=hold.set_by, set_at=hold.set_at)
                    if hold
                    else None,
                )
            )
        runs = [
            RunSummary(
                id=r.id,
                components=dict(r.components),
                state=RunState(r.state),
                reason=r.reason,
                created_at=r.created_at,
                finished_at=r.finished_at,
                propagated_from=(r.status or {}).get("propagated_from"),
            )
            for r in await store.runs(self.session, row.name)
        ]
        stop = await line_stops.active(self.session, row.name)
        return PipelineView(
            name=row.name,
            stages=spec.stages,
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            environments=environments,
            stop=stop,
            runs=runs,
        )

    # ------------------------------------------------------------------ runs

    async def start_run(self, principal: Principal, name: str, req: RunRequest) -> RunView:
        row = await store.get(self.session, name)
        spec = PipelineSpec.model_validate(row.spec)
        for component in sorted(req.components):
            for stage in spec.stages:
                check(principal, Role.OPERATOR, component, stage.environment)
        query = select(ComponentRow.name).where(ComponentRow.name.in_(list(req.components)))
        known = set((await self.session.execute(query)).scalars())
        unknown = sorted(set(req.components) - known)
        if unknown:
            raise _invalid(
                f"no component {', '.join(unknown)}",
                hint="register it first: POST /api/v1/components",
                field="body.components",
            )
        run_id = f"run-{uuid.uuid4().hex[:12]}"
        run = PipelineRunRow(
            id=run_id,
            pipeline=name,
            components=dict(req.components),
            state=RunState.RUNNING.value,
            initiator=principal.initiator,
            workflow_id=pipeline_workflow_id(name, run_id),
            created_at=utcnow(),
        )
        self.session.add(run)
        await self.session.flush()
        inp = RunInput(
            pipeline=name,
            run_id=run_id,
            spec=spec,
            components=dict(req.components),
            initiator=principal.initiator,
        )
        await self._start(run, inp, f"pipeline {name}: {len(req.components)} components")
        await audit.commit(
            self.session,
            principal,
            "pipeline.run_started",
            f"{name}/{run_id}",
            components=dict(req.components),
            workflow_id=run.workflow_id,
            run_id=run.run_id,
        )
        return self.run_view(run, None)

    async def propagate_rollback(
        self, principal: Principal, name: str, environment: str, reason: str
    ) -> RunView:
        """Start a run that moves each environment downstream of `environment` (in pipeline
        order) to the combination serving there now, where it was verified before; 409 naming
        why when it cannot (a run active, nothing to move, a combination never verified in
        one of them: all or nothing, before anything moves)."""
        row = await self._idle(name)
        spec = PipelineSpec.model_validate(row.spec)
        self._check_environments(principal, spec)
        if environment not in {s.environment for s in spec.stages}:
            raise NotFoundError(
                f"{environment} is not a stage of pipeline {name!r}",
                hint=f"GET /api/v1/pipelines/{name} lists its stages",
            )
        downstream = spec.downstream(environment)
        if not downstream:
            raise ConflictError(
                f"no stage of pipeline {name!r} requires {environment}: nothing to propagate to",
                hint="a rollback propagates to the stages whose `requires` reach it",
            )
        serving = await store.serving(self.session, name, environment)
        if serving is None:
            raise ConflictError(
                f"nothing was verified in {environment} by pipeline {name!r}",
                hint="only a combination the pipeline verified can be propagated",
            )
        moves: list[str] = []
        for env in downstream:
            now = await store.current(self.session, name, env)
            if now is not None and dict(now.components) != serving:
                moves.append(env)  # an environment the pipeline never reached is left alone
        shown = ", ".join(f"{c} {v}" for c, v in sorted(serving.items()))
        if not moves:
            raise ConflictError(
                f"every environment downstream of {environment} ({', '.join(downstream)}) "
                f"already has its verified combination ({shown}) or none",
                hint=f"GET /api/v1/pipelines/{name} shows what is verified where",
            )
        verified = await store.verified_at(self.session, name, serving, moves)
        never = [env for env in moves if env not in verified]
        if never:
            raise ConflictError(
                f"the combination serving in {environment} ({shown}) was never verified in "
                f"{', '.join(never)}: propagating it would deploy a mix that never passed there",
                hint=f"promote it instead: POST /api/v1/pipelines/{name}/runs, or roll "
                "those environments back by hand",
            )
        for component in sorted(serving):
            for env in moves:
                check(principal, Role.OPERATOR, component, env)
        run_id = f"run-{uuid.uuid4().hex[:12]}"
        run = PipelineRunRow(
            id=run_id,
            pipeline=name,
            components=dict(serving),
            state=RunState.RUNNING.value,
            initiator=principal.initiator,
            workflow_id=pipeline_workflow_id(name, run_id),
            created_at=utcnow(),
        )
        self.session.add(run)
        await self.session.flush()
        inp = RunInput(
            pipeline=name,
            run_id=run_id,
            spec=PipelineSpec(stages=[Stage(environment=env) for env in moves]),
            components=dict(serving),
            initiator=principal.initiator,
            propagate_from=environment,
        )
        summary = f"pipeline {name}: the rollback of {environment} to {', '.join(moves)}"
        await self._start(run, inp, summary)
        await audit.commit(
            self.session,
            principal,
            "pipeline.rollback_propagated",
            f"{name}/{environment}",
            run=run_id,
            components=dict(serving),
            environments=moves,
            reason=reason or None,
            workflow_id=run.workflow_id,
            run_id=run.run_id,
        )
        return self.run_view(run, None)

    async def _start(self, run: PipelineRunRow, inp: RunInput, summary: str) -> None:
        """Start the run's workflow (once: its id is the run's) and keep its run id."""
        handle = await self.gateway.start(
            PIPELINE_WORKFLOW,
            inp,
            workflow_id=run.workflow_id,
            policy=StartPolicy.ONCE,
            tags=Tags(initiator=inp.initiator),
            summary=summary,
        )
        run.run_id = handle.result_run_id

    async def get_run(self, name: str, run_id: str) -> RunView:
        run = await store.run(self.session, name, run_id)
        return self.run_view(run, await self._live(run))

    async def _live(self, run: PipelineRunRow) -> RunStatus | None:
        if RunState(run.state) in FINAL_RUN_STATES or not run.run_id:
            return None
        try:
            live: RunStatus = await self.gateway.query(run.workflow_id, None, "status", RunStatus)
        except Exception:  # no worker answered (or it just ended): the stored state stands
            return None
        return live

    async def act(
        self, principal: Principal, name: str, run_id: str, action: RunAction, reason: str
    ) -> RunView:
        run = await store.run(self.session, name, run_id)
        if RunState(run.state) in FINAL_RUN_STATES or not run.run_id:
            raise ConflictError(
                f"run {run_id} is {run.state}; nothing to {action.value}",
                hint="GET it to see how it ended",
            )
        if action is RunAction.APPROVE:
            await self._may_approve(principal, run)
        req = RunActionRequest(
            action=action, by=principal.initiator, role=principal.role, reason=reason
        )
        try:
            # The latest run of the workflow: a long wait continues it as new.
            status: RunStatus = await self.gateway.handle(run.workflow_id).execute_update(
                "act", req, result_type=RunStatus, rpc_timeout=UPDATE_TIMEOUT
            )
        except WorkflowUpdateFailedError as err:
            message = getattr(err.cause, "message", None) or str(err.cause)
            raise ConflictError(
                f"cannot {action.value} run {run_id}: {message}", hint="GET it to see its state"
            ) from None
        except RPCError:
            raise ConflictError(
                f"run {run_id} has finished; nothing to {action.value}",
                hint="GET it to see how it ended",
            ) from None
        await audit.commit(
            self.session,
            principal,
            f"pipeline.run_{action.value}",
            f"{name}/{run_id}",
            reason=reason or None,
            environment=_waiting(status),
        )
        return self.run_view(run, status)

    async def _may_approve(self, principal: Principal, run: PipelineRunRow) -> None:
        """403 naming the role a gate needs, before the workflow is asked."""
        live = await self._live(run)
        spec = PipelineSpec.model_validate((await store.get(self.session, run.pipeline)).spec)
        if live is None:
            return  # the workflow's validator answers
        for number, p in enumerate(live.stages):
            approval = spec.stages[number].gates.approval if number < len(spec.stages) else None
            if p.waiting_on == "approval" and approval is not None:
                needed = Role(approval.role)
                if not principal.role.allows(needed):
                    raise PermissionDeniedError(
                        f"the approval of {p.environment} needs the {needed.value} role; "
                        f"{principal.initiator} has {principal.role.value}",
                        hint=f"ask someone with the {needed.value} role to approve",
                    )
                return

    def run_view(self, run: PipelineRunRow, live: RunStatus | None) -> RunView:
        stored = RunStatus.model_validate(run.status) if run.status else None
        status = live or stored
        return RunView(
            id=run.id,
            pipeline=run.pipeline,
            components=dict(run.components),
            state=status.state if status else RunState(run.state),
            reason=status.reason if status else run.reason,
            initiator=run.initiator,
            created_at=run.created_at,
            finished_at=run.finished_at,
            status=status,
        )

    # ------------------------------------------------------------------ holds, stop

    async def release_hold(self, principal: Principal, name: str, environment: str) -> Hold:
        row = await store.get(self.session, name)
        self._check_environments(principal, PipelineSpec.model_validate(row.spec))
        hold = await store.release_hold(self.session, name, environment, utcnow())
        if hold is None:
            raise NotFoundError(
                f"no hold on {environment} in pipeline {name!r}",
                hint=f"GET /api/v1/pipelines/{name} shows the holds",
            )
        view = Hold(reason=hold.reason, set_by=hold.set_by, set_at=hold.set_at)
        await self._commit_and_wake(
            name, principal, "pipeline.hold_released", f"{name}/{environment}", reason=hold.reason
        )
        return view

    async def stop(self, principal: Principal, name: str, reason: str) -> LineStop:
        row = await store.get(self.session, name)
        self._check_environments(principal, PipelineSpec.model_validate(row.spec))
        stop = await line_stops.put(self.session, pipeline_scope(name), reason, principal.initiator)
        await audit.commit(self.session, principal, "pipeline.stopped", name, reason=reason)
        return stop

    async def unstop(self, principal: Principal, name: str) -> LineStop:
        row = await store.get(self.session, name)
        self._check_environments(principal, PipelineSpec.model_validate(row.spec))
        stop = await line_stops.remove(self.session, pipeline_scope(name))
        if stop is None:
            raise NotFoundError(
                f"the line of pipeline {name!r} is not stopped",
                hint=f"GET /api/v1/pipelines/{name} shows its stop",
            )
        await self._commit_and_wake(name, principal, "pipeline.restarted", name, was=stop.reason)
        return stop

    async def _commit_and_wake(
        self, name: str, principal: Principal, action: str, target: str, **detail: Any
    ) -> None:
        """Commit with the audit event, then tell the pipeline's active runs to check their
        gates now (best effort: without it they see the change at their next poll)."""
        active = await store.active_runs(self.session, name)
        await audit.commit(self.session, principal, action, target, **detail)
        for run in active:
            try:
                await self.gateway.handle(run.workflow_id).signal("recheck")
            except Exception:  # ended meanwhile, or Temporal away: the poll catches up
                continue


def _waiting(status: RunStatus) -> str | None:
    return next((p.environment for p in status.stages if p.waiting_on), None)
