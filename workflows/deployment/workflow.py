"""`deployment`: one durable saga per (component, environment) at a time.

The new version goes to the slot that does not serve (`blue` or `green`); the strategy moves
traffic to it; success removes the old slot. Every step that changes the world registers its
undo first, so failure, a failed analysis, abort, the progress deadline or cancellation all end
the same way: the previous version at 100% of the traffic, the new instances gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.deployments import RecordRequest
    from core.contracts import DEPLOYMENT_PHASE, DEPLOYMENT_WORKFLOW, STATUS_QUERY
    from core.deployment_plan import plan_markdown
    from core.models.analysis import STATUS_MEASUREMENTS, AnalysisResult, AnalysisSpec, Measurement
    from core.models.apikeys import Role
    from core.models.deployments import (
        FINAL_STATES,
        ActionRequest,
        Approval,
        DeploymentInput,
        DeploymentState,
        DeploymentStatus,
    )
    from core.models.infrastructure import InstanceSetSpec, TargetState
    from workflows.deployment import activities as acts
    from workflows.deployment.analysis import AnalysisRun, Target, run_analysis
    from workflows.deployment.saga import Saga
    from workflows.deployment.strategies import run_strategy

SLOTS = ("blue", "green")
# The patch that stopped counting pauses against the progress deadline and arms one timer per
# deadline instead of one per progress mark; older histories replay on the old watchdog.
DEADLINE_PATCH = "progress-deadline-holds"
# Signals the Temporal UI may send under each R2C_UI_ACTIONS policy (updates from the API are
# checked against the caller's role instead).
UI_SIGNALS = {
    "all": frozenset({"promote", "pause", "resume", "abort", "approve"}),
    "safe": frozenset({"pause", "abort"}),
    "none": frozenset(),
}


class RollbackNeeded(Exception):
    """The rollout must be undone: a failed analysis, an abort, the progress deadline."""

    def __init__(self, state: DeploymentState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


@workflow.defn(name=DEPLOYMENT_WORKFLOW)
class DeploymentWorkflow:
    """Deploys a version with a strategy; humans steer it with updates (API) or signals (UI)."""

    @workflow.init
    def __init__(self, inp: DeploymentInput) -> None:
        self.inp = inp
        self.status = DeploymentStatus(
            deployment_id=inp.deployment_id,
            component=inp.component,
            environment=inp.environment,
            version=inp.version,
            strategy=inp.strategy.type,
        )
        # A promotion applies to the gate open when it arrives (a pause, an inconclusive
        # analysis, a blue-green promotion), never to one that opens later.
        self.open_gate = 0  # 0: none open
        self.gates_opened = 0
        self.promoted_gate = 0
        self.promote_full = False
        self.user_paused = False
        self.abort_request: ActionRequest | None = None
        self.approval_needed: tuple[int, list[str]] | None = None
        self.progress_marker = 0
        # Waits that do not count against the progress deadline (pauses, delays, analyses).
        self.holds = 0
        self.last_progress = 0.0
        self.ending: DeploymentState | None = None
        self.unwinding = False
        self.committed = False
        self.cancel_requested = False
        self.cleanup: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: DeploymentInput) -> DeploymentStatus:
        self.status.started_at = workflow.now()
        self.last_progress = workflow.time()
        workflow.set_current_details(plan_markdown(inp))
        saga = Saga()
        main = asyncio.create_task(self._rollout(saga))
        watch = self._watch_progress if workflow.patched(DEADLINE_PATCH) else self._watch_legacy
        watchdog = asyncio.create_task(watch())
        try:
            await workflow.wait([main, watchdog], return_when=asyncio.FIRST_COMPLETED)
            if not main.done():  # the deadline passed: stop the rollout, then undo it
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
                raise watchdog.result()
            watchdog.cancel()
            main.result()
        except GeneratorExit:  # evicted from the worker's cache (not an ending): no undo here
            raise
        except BaseException as err:
            watchdog.cancel()
            # A cancellation reaches this task only: stop the rollout's own task too, and
            # let its step finish being cancelled, before undoing anything.
            if not main.done():
                self.cancel_requested = True  # a step that ends after all must stop there
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
            return await self._unwind(saga, err)
        await self._finish(DeploymentState.SUCCEEDED, f"{inp.version} serves 100% of the traffic")
        return self.status

    async def _rollout(self, saga: Saga) -> None:
        inp = self.inp
        await self._set_state(DeploymentState.PROGRESSING, "reading the current state")
        current = await acts.read_state(inp.component, inp.environment)
        stable = _serving_slot(current)
        self.status.endpoint = current.endpoint
        if stable is not None and _version_of(current, stable) == inp.version:
            self.status.stable_slot = stable
            self.status.reason = f"{inp.version} already serves {inp.environment}"
            return
        new = SLOTS[1] if stable == SLOTS[0] else SLOTS[0]
        self.status.new_slot, self.status.stable_slot = new, stable
        self.status.previous_version = _version_of(current, stable) if stable else None
        if any(s.slot == new for s in current.sets):
            # Left over from an earlier deployment that stopped half-way: start clean.
            await acts.remove_set(inp.component, inp.environment, new)
        await run_strategy(self, saga, stable, new)

    # ------------------------------------------------------------------ steps the strategies use

    async def start_new_set(self, saga: Saga, slot: str, count: int) -> None:
        """Start (or grow) the new version's set; undone by routing back and removing it."""
        inp = self.inp
        stable = self.status.stable_slot
        if not any(name == "new set" for name, _ in saga.undo):

            async def undo_new_set() -> None:
                # With no stable version there is nothing to route back to: no traffic at all
                # (an empty table would be refused, and would mean nothing).
                back = {stable: 100, slot: 0} if stable is not None else {slot: 0}
                await self.route(back, record=False)
                await self._delay_before_scale_down()
                await acts.remove_set(inp.component, inp.environment, slot)

            saga.add("new set", undo_new_set)
        await acts.ensure_instances(
            InstanceSetSpec(
                component=inp.component,
                environment=inp.environment,
                version=inp.version,
                slot=slot,
                count=count,
                env_overrides=inp.env,
                key=f"{inp.deployment_id}:{slot}:{count}",
            )
        )
        self._check_abort()
        self.mark_progress()

    async def scale_stable(
        self, saga: Saga, slot: str, version: str, count: int, full: int
    ) -> None:
        """Shrink the old set (rolling); undone by growing it back to `full`."""
        inp = self.inp
        if not any(name == "old set" for name, _ in saga.undo):

            async def undo_scale_down() -> None:
                await acts.ensure_instances(
                    InstanceSetSpec(
                        component=inp.component,
                        environment=inp.environment,
                        version=version,
                        slot=slot,
                        count=full,
                        env_overrides=None,  # the old set's own, as it was started
                        key=f"{inp.deployment_id}:restore:{slot}",
                    )  # fmt: skip
                )

            saga.add("old set", undo_scale_down)
        await acts.ensure_instances(
            InstanceSetSpec(
                component=inp.component,
                environment=inp.environment,
                version=version,
                slot=slot,
                count=count,
                env_overrides=None,  # the old set keeps the overrides it was started with
                key=f"{inp.deployment_id}:{slot}:{count}",
            )
        )
        self._check_abort()
        self.mark_progress()

    async def route(self, weights: dict[str, int], record: bool = True) -> None:
        state: TargetState = await acts.set_weights(
            self.inp.component, self.inp.environment, weights
        )
        self.status.weights = dict(state.weights)
        self.status.endpoint = state.endpoint
        if record:
            self._check_abort()
            self.mark_progress()

    def target(self) -> Target:
        return Target(self.inp.component, self.inp.environment, self.inp.version)

    async def analyse(self, spec: AnalysisSpec, where: str) -> None:
        """Run an analysis; failure rolls back, an inconclusive one waits for a human."""
        self.status.phase = f"analysis {where}"
        run = AnalysisRun(self.target(), where, self.record_measurement)
        with self.holding():  # measured in its own time; each measurement is progress
            result = await run_analysis(spec, run)
        assert result is not None  # only a stop request ends it early, and none is made
        await self.judge_analysis(result)

    async def judge_analysis(self, result: AnalysisResult) -> None:
        self.status.analyses.append(result)
        self.mark_progress()
        if result.phase in ("failed", "error"):
            raise RollbackNeeded(DeploymentState.ROLLED_BACK, result.reason)
        if result.phase == "inconclusive":
            await self.wait_for_promotion(f"analysis inconclusive: {result.reason}")

    async def finish_rollout(self, saga: Saga, new: str, stable: str | None) -> None:
        """The commit point: all traffic on the new set, then the old set goes."""
        await self.route({new: 100, **({stable: 0} if stable else {})})
        saga.undo.clear()  # from here on the new version is the stable one
        self.committed = True
        self.status.stable_slot, self.status.new_slot = new, None
        if stable is not None:
            self.status.phase = "removing the previous version"
            # Shielded: a cancellation now must not leave the old set half removed.
            self.cleanup = asyncio.create_task(
                acts.remove_set(self.inp.component, self.inp.environment, stable)
            )
            await asyncio.shield(self.cleanup)

    def record_measurement(self, m: Measurement) -> None:
        # Bounded: a long analysis must not grow the status (and each query's answer).
        self.status.measurements = [*self.status.measurements, m][-STATUS_MEASUREMENTS:]
        self.last_progress = workflow.time()
        workflow.set_current_details(f"{self.status.phase}\n\n- {m.message}")

    # ------------------------------------------------------------------ waiting

    def mark_progress(self) -> None:
        self.progress_marker += 1
        self.last_progress = workflow.time()
        s = self.status
        weights = ", ".join(f"{slot} {w}%" for slot, w in s.weights.items()) or "none"
        step = f"step {s.step} of {s.steps}: " if s.steps else ""
        workflow.set_current_details(f"**{s.state.value}**: {step}{s.phase}\n\nweights: {weights}")

    @contextmanager
    def holding(self) -> Iterator[None]:
        """A wait that does not count against the progress deadline (as in Argo, pauses do
        not); leaving it counts as progress."""
        self.holds += 1
        try:
            yield
        except GeneratorExit:  # the workflow is being evicted from the cache: no clock now
            self.holds -= 1
            raise
        except BaseException:
            self._end_hold()
            raise
        self._end_hold()

    def _end_hold(self) -> None:
        self.holds -= 1
        # Not `mark_progress`: that re-arms the legacy watchdog (a new timer command, which
        # histories recorded before DEADLINE_PATCH do not have).
        self.last_progress = workflow.time()

    @contextmanager
    def gate(self) -> Iterator[int]:
        """A gate a promotion can pass while it is open; yields its number."""
        self.gates_opened += 1
        self.open_gate = self.gates_opened
        try:
            yield self.open_gate
        finally:
            self.open_gate = 0

    def _passed(self, gate: int) -> bool:
        return self.promoted_gate == gate or self.promote_full or self._aborting()

    async def wait_for_promotion(self, reason: str) -> None:
        """Paused until someone promotes (or aborts)."""
        await self._set_state(DeploymentState.PAUSED, reason)
        self.status.paused_reason = reason
        with self.holding(), self.gate() as gate:
            await workflow.wait_condition(lambda: self._passed(gate))
        self._check_abort()
        self.status.paused_reason = None
        await self._set_state(DeploymentState.PROGRESSING, "promoted")
        self.mark_progress()

    async def timed_pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if promoted; an abort ends it at once."""
        self.status.phase = f"pause {seconds:g}s"
        with self.holding(), self.gate() as gate:
            try:
                await workflow.wait_condition(
                    lambda: self._passed(gate),
                    timeout=timedelta(seconds=seconds),
                    timeout_summary=f"pause {seconds:g}s",
                )
            except TimeoutError:
                pass
        self._check_abort()
        self.mark_progress()

    async def delay(self, seconds: float, summary: str) -> None:
        """A fixed wait of the strategy (blue-green's scale-down delay): not a lack of progress."""
        with self.holding():
            await workflow.sleep(timedelta(seconds=seconds), summary=summary)

    async def checkpoint(self) -> None:
        """Between steps: honour a pause by hand and an abort."""
        self._check_abort()
        if self.user_paused:
            await self._set_state(DeploymentState.PAUSED, "paused by hand")
            with self.holding():
                await workflow.wait_condition(lambda: not self.user_paused or self._aborting())
            self._check_abort()
            await self._set_state(DeploymentState.PROGRESSING, "resumed")
            self.mark_progress()

    async def wait_for_approval(
        self, step: int, roles: list[str], window: float, on_timeout: str
    ) -> None:
        self.approval_needed = (step, roles)
        await self._set_state(DeploymentState.PAUSED, f"waiting for approval by {', '.join(roles)}")
        try:
            with self.holding():
                await workflow.wait_condition(
                    lambda: any(a.step == step for a in self.status.approvals) or self._aborting(),
                    timeout=timedelta(seconds=window),
                    timeout_summary="approval window",
                )
        except TimeoutError:
            if on_timeout == "abort":
                raise RollbackNeeded(
                    DeploymentState.ABORTED, f"no approval within {window:g}s at step {step}"
                ) from None
        finally:
            self.approval_needed = None
        self._check_abort()
        await self._set_state(DeploymentState.PROGRESSING, "approved")
        self.mark_progress()

    def _aborting(self) -> bool:
        return self.abort_request is not None or self.cancel_requested

    def _check_abort(self) -> None:
        if self.cancel_requested:
            # An activity that completed although its cancellation was asked for returns
            # normally (WAIT_CANCELLATION_COMPLETED): the rollout stops at the next check.
            raise asyncio.CancelledError()
        if self.abort_request is not None:
            who = self.abort_request.by or "someone"
            why = f": {self.abort_request.reason}" if self.abort_request.reason else ""
            raise RollbackNeeded(DeploymentState.ABORTED, f"aborted by {who}{why}")

    async def _watch_progress(self) -> BaseException:
        """Fails the rollout when it makes no progress for the deadline. Time in pauses,
        delays and analyses is not counted; one timer runs per deadline, not per step."""
        deadline = self.inp.strategy.progress_deadline_seconds
        while True:
            if self.holds or self.status.state is DeploymentState.PAUSED:
                await workflow.wait_condition(
                    lambda: not self.holds and self.status.state is not DeploymentState.PAUSED
                )
                self.last_progress = workflow.time()
                continue
            remaining = self.last_progress + deadline - workflow.time()
            if remaining <= 0:
                return RollbackNeeded(
                    DeploymentState.FAILED,
                    f"no progress for {deadline:g}s (progress deadline exceeded)",
                )
            await workflow.sleep(timedelta(seconds=remaining), summary="progress deadline")

    async def _watch_legacy(self) -> BaseException:
        """The watchdog of histories recorded before DEADLINE_PATCH (a timer per mark)."""
        deadline = timedelta(seconds=self.inp.strategy.progress_deadline_seconds)
        while True:
            marker = self.progress_marker
            try:
                await workflow.wait_condition(
                    lambda marker=marker: (  # type: ignore[misc]
                        self.progress_marker != marker
                        or self.status.state is DeploymentState.PAUSED
                    ),
                    timeout=deadline,
                    timeout_summary="progress deadline",
                )
            except TimeoutError:
                return RollbackNeeded(
                    DeploymentState.FAILED,
                    f"no progress for {deadline.total_seconds():g}s (progress deadline exceeded)",
                )
            if self.status.state is DeploymentState.PAUSED:
                await workflow.wait_condition(
                    lambda: self.status.state is not DeploymentState.PAUSED
                )

    async def _delay_before_scale_down(self) -> None:
        strategy = self.inp.strategy
        delay = getattr(strategy, "abort_scale_down_delay_seconds", 0)
        if delay and self.ending is DeploymentState.ABORTED:
            await workflow.sleep(timedelta(seconds=delay), summary="abort scale-down delay")

    # ------------------------------------------------------------------ ending

    async def _unwind(self, saga: Saga, err: BaseException) -> DeploymentStatus:
        cancelled = is_cancelled_exception(err)
        if cancelled and self.committed:
            # Too late to undo: the new version already serves all traffic. Finish the
            # clean-up and say what happened rather than calling it aborted.
            if self.cleanup is not None:
                await asyncio.gather(self.cleanup, return_exceptions=True)
            await self._finish(
                DeploymentState.SUCCEEDED,
                f"{self.inp.version} serves 100% of the traffic (a cancellation arrived after"
                " the switch; nothing was undone)",
            )
            return self.status
        if isinstance(err, RollbackNeeded):
            state, reason = err.state, err.reason
        elif cancelled:
            reason = workflow.cancellation_reason() or "cancelled"
            state, reason = DeploymentState.ABORTED, f"{reason} (cancellation)"
        elif isinstance(err, FailureError):
            state, reason = DeploymentState.FAILED, _describe(err)
        else:
            # A bug, or input no check foresaw: undo and fail with the reason, rather than
            # fail the workflow task forever with the target's lock held and the canary's
            # weights in place.
            workflow.logger.exception("unexpected error in the deployment")
            state = DeploymentState.FAILED
            reason = f"internal error: {type(err).__name__}: {err}"[:1000]
        self.ending = state  # before compensating: the abort delay depends on it
        self.unwinding = True
        self.status.phase, self.status.reason = "rolling back", reason
        workflow.set_current_details(f"**rolling back**: {reason}")
        # Shielded: a cancellation must not interrupt the undo it asked for.
        failed = await asyncio.shield(asyncio.create_task(saga.compensate()))
        if failed:
            reason += f"; compensation failed: {', '.join(failed)}"
            state = DeploymentState.FAILED
        await asyncio.shield(asyncio.create_task(self._finish(state, reason)))
        if cancelled:
            raise err
        if state is DeploymentState.FAILED:
            raise ApplicationError(reason, type="DeploymentFailed", non_retryable=True)
        return self.status

    async def _finish(self, state: DeploymentState, reason: str) -> None:
        if state is not DeploymentState.SUCCEEDED or self.status.reason is None:
            self.status.reason = reason
        self.status.finished_at = workflow.now()
        await self._set_state(
            state, "done" if state is DeploymentState.SUCCEEDED else state.value, always=True
        )
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _set_state(self, state: DeploymentState, phase: str, always: bool = False) -> None:
        """Record a new state in the store first, then show it: whoever sees it in the status
        query finds the same in the deployment list."""
        if state is not self.status.state or always:
            upcoming = self.status.model_copy(update={"state": state, "phase": phase})
            workflow.upsert_search_attributes([DEPLOYMENT_PHASE.value_set(state.value)])
            info = workflow.info()
            await acts.record(
                RecordRequest(
                    # Env values stay out of every record payload (they may be sensitive);
                    # the API stored the whole request when it started the deployment.
                    input=self.inp.model_copy(update={"env": {}}),
                    status=upcoming,
                    workflow_id=info.workflow_id,
                    run_id=info.run_id,
                )
            )
        self.status.state, self.status.phase = state, phase

    # ------------------------------------------------------------------ queries, updates, signals

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> DeploymentStatus:
        return self.status

    def _active(self) -> None:
        if self.status.state in FINAL_STATES or self.unwinding:
            raise ValueError(f"the deployment is {self.status.state.value}; nothing to act on")

    def _promotion_problem(self, req: ActionRequest) -> str | None:
        if self.approval_needed is not None:
            return "this step waits for an approval, not a promotion: use approve"
        if not self.open_gate and not req.full:
            return (
                "nothing waits for a promotion now (a promotion passes the pause, inconclusive"
                ' analysis or blue-green promotion that is open); send {"full": true} to skip'
                " every remaining step"
            )
        return None

    def _promote(self, req: ActionRequest) -> None:
        if self.open_gate:
            self.promoted_gate = self.open_gate
        if req.full:
            self.promote_full = True
            self.user_paused = False

    def _approval_problem(self, req: ActionRequest) -> str | None:
        if self.approval_needed is None:
            return "no step is waiting for an approval"
        _, roles = self.approval_needed
        # Roles are ordered: a role approves where any role at or below it may.
        if req.role is not None and not any(req.role.allows(Role(r)) for r in roles):
            return f"this approval needs one of the roles {roles} or higher; yours is {req.role}"
        return None

    def _approve(self, req: ActionRequest) -> None:
        assert self.approval_needed is not None
        step, _ = self.approval_needed
        self.status.approvals.append(
            Approval(step=step, by=req.by or "unknown", at=workflow.now(), comment=req.reason)
        )

    @workflow.update(name="promote")
    def promote(self, req: ActionRequest) -> DeploymentStatus:
        self._promote(req)
        return self.status

    @promote.validator
    def _can_promote(self, req: ActionRequest) -> None:
        self._active()
        problem = self._promotion_problem(req)
        if problem:
            raise ValueError(problem)

    @workflow.update(name="pause")
    def pause(self, _req: ActionRequest) -> DeploymentStatus:
        self.user_paused = True
        return self.status

    @pause.validator
    def _can_pause(self, _req: ActionRequest) -> None:
        self._active()
        if self.user_paused:
            raise ValueError("the deployment is already paused")

    @workflow.update(name="resume")
    def resume(self, _req: ActionRequest) -> DeploymentStatus:
        self.user_paused = False
        return self.status

    @resume.validator
    def _can_resume(self, _req: ActionRequest) -> None:
        self._active()
        if not self.user_paused:
            raise ValueError(
                "the deployment is not paused by hand; use promote to pass a pause step"
            )

    @workflow.update(name="abort")
    def abort(self, req: ActionRequest) -> DeploymentStatus:
        self.abort_request = req
        return self.status

    @abort.validator
    def _can_abort(self, req: ActionRequest) -> None:  # noqa: ARG002
        self._active()
        if self.abort_request is not None:
            raise ValueError("an abort is already under way")

    @workflow.update(name="approve")
    def approve(self, req: ActionRequest) -> DeploymentStatus:
        self._approve(req)
        return self.status

    @approve.validator
    def _can_approve(self, req: ActionRequest) -> None:
        self._active()
        problem = self._approval_problem(req)
        if problem:
            raise ValueError(problem)

    # Signals, so "Send signal" in the Temporal UI steers a deployment too. A signal has no
    # answer and, in SDK 1.35, no sender identity that workflow code can read (the history
    # keeps it on the WorkflowExecutionSignaled event): which signals are honoured is the
    # R2C_UI_ACTIONS policy in the input; one that is not is noted in the status and dropped.
    def _signal(self, name: str, req: ActionRequest | None) -> ActionRequest | None:
        sent = (req or ActionRequest()).model_copy(
            update={
                "by": f"temporal-ui ({(req.by if req and req.by else 'unnamed')})",
                "role": None,
            }  # fmt: skip
        )
        problem: str | None = None
        if name not in UI_SIGNALS[self.inp.ui_actions]:
            problem = f"R2C_UI_ACTIONS={self.inp.ui_actions} does not honour it from the UI"
        elif self.status.state in FINAL_STATES or self.unwinding:
            problem = "the deployment is ending"
        elif name == "promote":
            problem = self._promotion_problem(sent)
        elif name == "approve":
            problem = self._approval_problem(sent)
        if problem:
            note = f"signal {name} from {sent.by} ignored: {problem}"
            self.status.notices = [*self.status.notices, note][-10:]
            workflow.logger.warning(note)
            return None
        return sent

    @workflow.signal(name="promote")
    def promote_signal(self, req: ActionRequest | None = None) -> None:
        sent = self._signal("promote", req)
        if sent is not None:
            self._promote(sent)

    @workflow.signal(name="pause")
    def pause_signal(self, req: ActionRequest | None = None) -> None:
        if self._signal("pause", req) is not None:
            self.user_paused = True

    @workflow.signal(name="resume")
    def resume_signal(self, req: ActionRequest | None = None) -> None:
        if self._signal("resume", req) is not None:
            self.user_paused = False

    @workflow.signal(name="abort")
    def abort_signal(self, req: ActionRequest | None = None) -> None:
        sent = self._signal("abort", req)
        if sent is not None and self.abort_request is None:
            self.abort_request = sent

    @workflow.signal(name="approve")
    def approve_signal(self, req: ActionRequest | None = None) -> None:
        sent = self._signal("approve", req)
        if sent is not None:
            self._approve(sent)


def _serving_slot(state: TargetState) -> str | None:
    serving = [(w, slot) for slot, w in state.weights.items() if w > 0]
    return max(serving)[1] if serving else None


def _version_of(state: TargetState, slot: str | None) -> str | None:
    return next((s.version for s in state.sets if s.slot == slot), None)


def _describe(err: BaseException) -> str:
    parts: list[str] = []
    while err is not None and len(parts) < 4:
        message = getattr(err, "message", None) or str(err)
        if message and message not in parts:
            parts.append(message)
        err = err.__cause__  # type: ignore[assignment]
    return ": ".join(parts) or type(err).__name__
