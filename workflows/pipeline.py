"""The pipeline run workflow: one combination of versions promoted stage by stage.

Stages run in the order the pipeline lists them (a stage may require only earlier ones). Before
each stage its gates, in this order, re-checked from the top after every wait (a long approval
may have let the window close, or the line be stopped): requires (the combination verified
upstream: all or one of them), soak (a durable timer from when it was verified upstream),
schedule window, stop the line, hold (auto-promotion only), approval, promote (without
auto-promotion). Then the stage's release, as a child release workflow, and its
post-promotion analysis; the combination is then verified there. A stage whose requirement can
no longer be met is blocked; the run goes on with the stages that can still run.

Waits on the line stop and on a hold poll every POLL (a durable timer); after MAX_POLLS polls,
or when Temporal suggests it, the run continues as new at the stage it waits in, carrying its
status (approvals included), so a run that waits for days keeps a small history.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from core.contracts import STATUS_QUERY
    from core.models.pipelines import (
        CHECK_GATES_ACTIVITY,
        FINAL_RUN_STATES,
        PIPELINE_WORKFLOW,
        PREPARE_RELEASE_ACTIVITY,
        RECORD_RUN_ACTIVITY,
        RECORD_VERIFIED_ACTIVITY,
        Approved,
        GateAnswer,
        GateCheck,
        LastVerified,
        PreparedStage,
        PrepareStage,
        RunActionRequest,
        RunInput,
        RunState,
        RunStatus,
        Stage,
        StageProgress,
        StageState,
        VerifiedRecord,
    )
    from core.models.releases import (
        RELEASE_WORKFLOW,
        ReleaseInput,
        ReleaseState,
        ReleaseStatus,
        release_workflow_id,
    )
    from core.models.roles import Role
    from workflows.deployment.analysis import AnalysisRun, Target, run_analysis

POLL = timedelta(seconds=30)
MAX_POLLS = 200
_SHORT = timedelta(seconds=10)
_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))


def stage_release_id(run_id: str, environment: str, kind: str = "promote") -> str:
    """The release of a stage: the same on every attempt and replay (the releases API's id
    shape, `rel-` and 12 hex digits)."""
    return "rel-" + hashlib.sha256(f"{run_id}:{environment}:{kind}".encode()).hexdigest()[:12]


def _approved(p: StageProgress, needed: int) -> bool:
    return len(p.approvals) >= needed


class _Aborted(Exception):
    pass


class _ContinueAsNew(Exception):
    pass


@workflow.defn(name=PIPELINE_WORKFLOW)
class PipelineWorkflow:
    @workflow.init
    def __init__(self, inp: RunInput) -> None:
        self.inp = inp
        self.status = inp.carried or RunStatus(
            pipeline=inp.pipeline,
            run_id=inp.run_id,
            components=dict(inp.components),
            stages=[StageProgress(environment=s.environment) for s in inp.spec.stages],
            propagated_from=inp.propagate_from,
        )
        self.paused = self.status.state is RunState.PAUSED
        self.abort_reason: str | None = None
        self.polls = 0
        self.wake = False  # a `recheck`: a hold released or the line restarted, look again
        self.child: workflow.ChildWorkflowHandle[object, ReleaseStatus] | None = None

    @workflow.run
    async def run(self, inp: RunInput) -> RunStatus:
        s = self.status
        s.started_at = s.started_at or workflow.now()
        try:
            if inp.propagate_from is not None:
                await self._propagate(inp.propagate_from)
            for number, stage in enumerate(inp.spec.stages):
                if inp.propagate_from is not None:
                    break
                if s.stages[number].state is StageState.PENDING or (
                    s.stages[number].state is StageState.WAITING
                ):
                    await self._stage(number, stage)
        except _ContinueAsNew:
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(inp.model_copy(update={"carried": s}))
        except _Aborted:
            p = self._current()
            if p.state is StageState.WAITING:
                p.state, p.reason = StageState.ABORTED, self.abort_reason
            self._finish(RunState.ABORTED, self.abort_reason or "aborted")
        except BaseException as err:
            if not is_cancelled_exception(err):
                raise
            self._finish(RunState.ABORTED, workflow.cancellation_reason() or "cancelled")
            await asyncio.shield(asyncio.create_task(self._record()))
            raise
        else:
            self._conclude()
        await self._record()
        return s

    def _conclude(self) -> None:
        states = [p.state for p in self.status.stages]
        source = self.inp.propagate_from
        if source is not None:
            if all(state is StageState.ROLLED_BACK for state in states):
                moved = ", ".join(p.environment for p in self.status.stages)
                self._finish(RunState.SUCCEEDED, f"the rollback of {source} reached {moved}")
                return
            failed = next(p for p in self.status.stages if p.state is not StageState.ROLLED_BACK)
            self._finish(RunState.FAILED, f"{failed.environment}: {failed.reason}")
            return
        if all(state is StageState.VERIFIED for state in states):
            self._finish(RunState.SUCCEEDED, "the combination is verified in every stage")
        elif StageState.ROLLED_BACK in states:
            failed = next(p for p in self.status.stages if p.state is StageState.ROLLED_BACK)
            self._finish(RunState.ROLLED_BACK, f"{failed.environment}: {failed.reason}")
        else:
            failed = next(p for p in self.status.stages if p.state is not StageState.VERIFIED)
            self._finish(RunState.FAILED, f"{failed.environment}: {failed.reason}")

    def _finish(self, state: RunState, reason: str) -> None:
        s = self.status
        s.state, s.reason, s.finished_at = state, reason, workflow.now()

    async def _record(self) -> None:
        await workflow.execute_activity(
            RECORD_RUN_ACTIVITY, self.status, start_to_close_timeout=_SHORT, retry_policy=_RETRY
        )

    # ------------------------------------------------------------------ one stage

    async def _stage(self, number: int, stage: Stage) -> None:
        p = self.status.stages[number]
        p.started_at = p.started_at or workflow.now()
        p.state = StageState.WAITING
        await self._record()
        gates = await self._gates(number, stage)
        if gates is None:
            return
        await self._wait("", None, None)  # the last word on abort and pause
        self._waiting(p, None, None)
        p.state = StageState.RELEASING
        released = await self._release(p, dict(self.inp.components), "promote")
        if not released:
            return
        p.state = StageState.VERIFYING
        failure = await self._verify(stage, p)
        if failure is None:
            p.state, p.verified_at = StageState.VERIFIED, workflow.now()
            await workflow.execute_activity(
                RECORD_VERIFIED_ACTIVITY,
                VerifiedRecord(
                    pipeline=self.inp.pipeline,
                    environment=stage.environment,
                    components=dict(self.inp.components),
                    run_id=self.inp.run_id,
                    verified_at=p.verified_at,
                ),
                start_to_close_timeout=_SHORT,
                retry_policy=_RETRY,
            )
            await self._record()
            return
        p.state, p.reason = StageState.FAILED, f"post-promotion verification failed: {failure}"
        await self._auto_rollback(stage, p, gates.last_verified)

    async def _gates(self, number: int, stage: Stage) -> GateAnswer | None:
        """Wait until every gate of the stage is open; None when it never can be (blocked)."""
        p, g = self.status.stages[number], stage.gates
        upstream, mode = self.inp.spec.upstream(number)
        while True:
            await self._wait("", None, None)
            answer: GateAnswer = await workflow.execute_activity(
                CHECK_GATES_ACTIVITY,
                GateCheck(
                    pipeline=self.inp.pipeline,
                    environment=stage.environment,
                    upstream=upstream,
                    components=dict(self.inp.components),
                    window=g.window,
                    now=workflow.now(),
                    auto_promote=stage.auto_promote,
                    release_id=stage_release_id(self.inp.run_id, stage.environment),
                ),
                result_type=GateAnswer,
                start_to_close_timeout=_SHORT,
                retry_policy=_RETRY,
            )
            now = workflow.now()
            verified = [answer.verified_at[e] for e in upstream if e in answer.verified_at]
            if upstream and ((mode == "all" and len(verified) < len(upstream)) or not verified):
                missing = [e for e in upstream if e not in answer.verified_at]
                p.state, p.waiting_on = StageState.BLOCKED, "requires"
                p.reason = (
                    f"the combination is not verified in {', '.join(missing)} "
                    f"({'all' if mode == 'all' else 'one'} of {', '.join(upstream)} needed)"
                )
                return None
            if g.soak:
                # From when the combination became verified upstream: the last of them (all)
                # or the first (one); without an upstream, from the run's start.
                since = (
                    (max(verified) if mode == "all" else min(verified))
                    if verified
                    else self.status.started_at or now
                )
                ends = since + timedelta(seconds=g.soak)
                if ends > now:
                    await self._wait("soak", f"soaking {g.soak:g}s since {since.isoformat()}", ends)
                    continue
            if answer.window_wait > 0 and g.window is not None:
                w = g.window
                ends = now + timedelta(seconds=answer.window_wait)
                why = f"outside the window {'/'.join(w.days)} {w.start}-{w.end} {w.time_zone}"
                await self._wait("window", why, ends)
                continue
            policy = await self._policy(p, answer)
            if policy is False:
                return None
            if policy:
                continue
            if answer.line_stop is not None:
                await self._poll("line_stop", f"the line is stopped: {answer.line_stop}")
                continue
            if answer.hold is not None and stage.auto_promote:
                await self._poll("hold", f"held: {answer.hold}")
                continue
            if g.approval is not None and len(p.approvals) < g.approval.count:
                a = g.approval
                why = f"{len(p.approvals)} of {a.count} approvals by {a.role.value} or above"
                self._waiting(p, "approval", why)
                await self._until(functools.partial(_approved, p, a.count))
                continue
            if not stage.auto_promote and p.promoted_by is None:
                self._waiting(p, "promote", "an operator's promote (auto-promotion is off)")
                await self._until(lambda: p.promoted_by is not None)
                continue
            self._waiting(p, None, None)
            return answer

    async def _policy(self, p: StageProgress, answer: GateAnswer) -> bool | None:
        """The environment's configuration policy on the release's deployments: False when
        it refuses (the stage fails with its message: waiting will not change it), True after
        waiting out a freeze window (check every gate again), None when it lets them pass."""
        if answer.policy_refusal is not None:
            p.state, p.waiting_on, p.why = StageState.FAILED, "policy", answer.policy_refusal
            p.reason = f"the environment's policy refuses the release: {answer.policy_refusal}"
            return False
        if answer.policy_frozen is not None and answer.policy_until is not None:
            await self._wait("policy", answer.policy_frozen, answer.policy_until)
            return True
        return None

    def _waiting(self, p: StageProgress, gate: str | None, why: str | None) -> None:
        p.waiting_on, p.why, p.until = gate, why, None

    def _current(self) -> StageProgress:
        return next(
            (p for p in self.status.stages if p.state is StageState.WAITING),
            self.status.stages[-1],
        )

    async def _until(self, done: Callable[[], bool]) -> None:
        await workflow.wait_condition(lambda: bool(done()) or self.abort_reason is not None)
        if self.abort_reason is not None:
            raise _Aborted()

    async def _wait(self, gate: str, why: str | None, ends: datetime | None) -> None:
        """Pause, abort, and a timed wait (`ends`) that an abort cuts short."""
        if self.abort_reason is not None:
            raise _Aborted()
        if self.paused:
            await workflow.wait_condition(lambda: not self.paused or self.abort_reason is not None)
            if self.abort_reason is not None:
                raise _Aborted()
        if ends is None:
            return
        p = self._current()
        p.waiting_on, p.why, p.until = gate, why, ends
        seconds = (ends - workflow.now()).total_seconds()
        self.wake = False
        try:
            await workflow.wait_condition(
                lambda: self.abort_reason is not None or self.paused or self.wake,
                timeout=timedelta(seconds=max(seconds, 0.001)),
            )
        except TimeoutError:
            pass
        if self.abort_reason is not None:
            raise _Aborted()

    async def _poll(self, gate: str, why: str) -> None:
        self.polls += 1
        if self.polls > MAX_POLLS or workflow.info().is_continue_as_new_suggested():
            raise _ContinueAsNew()
        await self._wait(gate, why, workflow.now() + POLL)

    # ------------------------------------------------------------------ release, verify

    async def _release(self, p: StageProgress, components: dict[str, str], kind: str) -> bool:
        """The stage's release of `components`, as a child; whether it succeeded."""
        release_id = stage_release_id(self.inp.run_id, p.environment, kind)
        if kind != "rollback":
            p.release_id, p.released_at = release_id, workflow.now()
        else:
            p.rollback_release_id = release_id
        prepared = await workflow.execute_activity(
            PREPARE_RELEASE_ACTIVITY,
            PrepareStage(
                pipeline=self.inp.pipeline,
                run_id=self.inp.run_id,
                environment=p.environment,
                components=components,
                release_id=release_id,
            ),
            result_type=PreparedStage,
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )
        if prepared.refused is not None or prepared.input is None:
            p.state, p.reason = StageState.FAILED, prepared.refused or "release not prepared"
            return False
        try:
            self.child = await workflow.start_child_workflow(
                RELEASE_WORKFLOW,
                ReleaseInput.model_validate(prepared.input),
                id=release_workflow_id(release_id),
                result_type=ReleaseStatus,
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"{kind} to {p.environment} (pipeline {self.inp.pipeline})",
            )
        except WorkflowAlreadyStartedError:
            p.state, p.reason = StageState.FAILED, f"release {release_id} was started already"
            return False
        p.release_state = ReleaseState.PROGRESSING.value
        try:
            result = await self._child_result()
        finally:
            self.child = None
        p.release_state = result.state.value if result else ReleaseState.FAILED.value
        if result is None or result.state is not ReleaseState.SUCCEEDED:
            p.state = StageState.FAILED
            p.reason = f"release {release_id}: " + (
                (result.reason or result.state.value) if result else "failed"
            )
            if self.abort_reason is not None:
                raise _Aborted()
            return False
        return True

    async def _child_result(self) -> ReleaseStatus | None:
        assert self.child is not None
        child = self.child
        try:
            await workflow.wait_condition(lambda: child.done() or self.abort_reason is not None)
            if not child.done():
                child.cancel()  # the release undoes what it moved, then ends
            return await child
        except ChildWorkflowError as err:
            if not is_cancelled_exception(err) and isinstance(err.cause, ApplicationError):
                workflow.logger.warning("pipeline release failed: %s", err.cause.message)
            return None

    async def _verify(self, stage: Stage, p: StageProgress) -> str | None:
        """Post-promotion analysis of every component on the environment just deployed: None
        when it passed (or there is none), else why it failed."""
        spec = stage.gates.analysis
        if spec is None:
            return None
        results = await asyncio.gather(
            *(
                run_analysis(
                    spec,
                    AnalysisRun(
                        target=Target(component=name, environment=p.environment, version=v),
                        where=f"on {name} {v} in {p.environment}",
                        record=lambda _m: None,
                    ),
                )
                for name, v in sorted(self.inp.components.items())
            )
        )
        for result in results:
            if result is None or result.phase != "successful":
                return result.reason if result else "the analysis did not decide"
        return None

    async def _auto_rollback(self, stage: Stage, p: StageProgress, last: LastVerified) -> None:
        """Back to the environment's last verified combination, with the guardrails: the
        environment has settled (its release ended before the analysis began), the failure
        is this promotion's own (found by its verification, never later), and never a
        rollback of a rollback or to the combination that just failed."""
        if not stage.auto_rollback:
            return
        if last.components is None:
            p.reason = f"{p.reason}; no automatic rollback: nothing was verified there before"
            return
        if last.rollback:
            p.reason = f"{p.reason}; no automatic rollback: never a rollback of a rollback"
            return
        if last.components == dict(self.inp.components):
            p.reason = f"{p.reason}; no automatic rollback: it is the last verified combination"
            return
        rolled = await self._release(p, dict(last.components), "rollback")
        if rolled:
            p.state = StageState.ROLLED_BACK
            p.reason = f"{p.reason}; rolled back to the last verified combination"
            await workflow.execute_activity(
                RECORD_VERIFIED_ACTIVITY,
                VerifiedRecord(
                    pipeline=self.inp.pipeline,
                    environment=stage.environment,
                    components=dict(last.components),
                    run_id=self.inp.run_id,
                    verified_at=workflow.now(),
                    rollback=True,
                ),
                start_to_close_timeout=_SHORT,
                retry_policy=_RETRY,
            )
        else:
            p.state = StageState.FAILED
            p.reason = f"{p.reason}; the automatic rollback failed"

    # ------------------------------------------------------------------ propagation

    async def _propagate(self, source: str) -> None:
        """A rollback propagated on request: each stage (the environments downstream of
        `source`, in pipeline order) moved to the combination serving in `source`, which the
        API checked was verified there before. No gate but the policy's: a person asked for
        it. Each environment is then held, as a person's rollback would hold it. The first
        step that fails ends the run; the later ones are not moved."""
        components = dict(self.inp.components)
        for p in self.status.stages:
            if p.state is not StageState.PENDING:
                continue
            p.started_at, p.state = workflow.now(), StageState.WAITING
            await self._record()
            while True:
                await self._wait("", None, None)
                answer: GateAnswer = await workflow.execute_activity(
                    CHECK_GATES_ACTIVITY,
                    GateCheck(
                        pipeline=self.inp.pipeline,
                        environment=p.environment,
                        upstream=[],
                        components=components,
                        now=workflow.now(),
                        release_id=stage_release_id(self.inp.run_id, p.environment, "propagate"),
                    ),
                    result_type=GateAnswer,
                    start_to_close_timeout=_SHORT,
                    retry_policy=_RETRY,
                )
                policy = await self._policy(p, answer)
                if not policy:
                    break
            if policy is False:
                break
            self._waiting(p, None, None)
            p.state = StageState.RELEASING
            if not await self._release(p, components, "propagate"):
                break
            p.state, p.verified_at = StageState.ROLLED_BACK, workflow.now()
            p.reason = f"rolled back to the combination serving in {source}"
            await workflow.execute_activity(
                RECORD_VERIFIED_ACTIVITY,
                VerifiedRecord(
                    pipeline=self.inp.pipeline,
                    environment=p.environment,
                    components=components,
                    run_id=self.inp.run_id,
                    verified_at=p.verified_at,
                    hold=f"run {self.inp.run_id} propagated the rollback of {source} "
                    f"({self.inp.initiator})",
                ),
                start_to_close_timeout=_SHORT,
                retry_policy=_RETRY,
            )
            await self._record()
        for p in self.status.stages:
            if p.state is StageState.PENDING:
                p.state, p.reason = StageState.BLOCKED, "an earlier environment was not moved"

    # ------------------------------------------------------------------ query, actions

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> RunStatus:
        return self.status

    @workflow.signal(name="recheck")
    def recheck(self) -> None:
        """The gates changed outside (a hold released, a line stop cleared): check them now
        rather than at the next poll."""
        self.wake = True

    @workflow.update(name="act")
    def act(self, req: RunActionRequest) -> RunStatus:
        s, p, action = self.status, self._current(), req.action
        if action == "pause":
            self.paused, s.state = True, RunState.PAUSED
        elif action == "resume":
            self.paused, s.state = False, RunState.RUNNING
        elif action == "abort":
            self.abort_reason = f"aborted by {req.by or 'an operator'}" + (
                f": {req.reason}" if req.reason else ""
            )
        elif action == "approve":
            p.approvals.append(Approved(by=req.by, role=req.role, at=workflow.now()))
        elif action == "promote":
            p.promoted_by = req.by or "an operator"
        return s

    @act.validator
    def _may_act(self, req: RunActionRequest) -> None:
        s, action = self.status, req.action.value
        if s.state in FINAL_RUN_STATES or self.abort_reason is not None:
            raise ValueError(f"the run is {s.state.value}; nothing to {action}")
        p = self._current()
        if action == "pause" and self.paused:
            raise ValueError("the run is paused already")
        if action == "resume" and not self.paused:
            raise ValueError("the run is not paused")
        if action == "approve":
            stage = self.inp.spec.stages[s.stages.index(p)]
            needed = stage.gates.approval
            if p.waiting_on != "approval" or needed is None:
                raise ValueError(f"{p.environment} is not waiting for an approval")
            if not req.role.allows(Role(needed.role)):
                raise ValueError(f"the approval of {p.environment} needs the role {needed.role}")
            if any(a.by == req.by for a in p.approvals):
                raise ValueError(f"{req.by} has approved {p.environment} already")
        if action == "promote" and p.waiting_on != "promote":
            raise ValueError(f"{p.environment} is not waiting for a promote")
