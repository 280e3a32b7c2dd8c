"""`deployment`: one durable saga per (component, environment) at a time.

The new version goes to the slot that does not serve (`blue` or `green`); the strategy moves
traffic to it; success removes the old slot. Every step that changes the world registers its
undo first, so failure, a failed analysis, abort, the progress deadline or cancellation all end
the same way: the previous version at 100% of the traffic, the new instances gone.

This module holds what Temporal sees of a deployment: run, the way out (unwind), and the
handlers. The steps live on the `Rollout` (rollout.py), gates and the deadline in gates.py,
each strategy in its own module.

Sandbox: the saga's own modules are passed through with the models and activity stubs. They
keep no module state (every deployment's state lives on its `Rollout`), so the isolation the
sandbox would add is nothing, while re-importing them for every workflow run would cost time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditEventRequest
    from core.contracts import DEPLOYMENT_WORKFLOW, STATUS_QUERY
    from core.deployment_plan import plan_markdown
    from core.models.deployments import (
        FINAL_STATES,
        ActionRequest,
        Approval,
        DeploymentInput,
        DeploymentState,
        DeploymentStatus,
    )
    from core.models.infrastructure import TargetState
    from workflows.deployment import activities as acts
    from workflows.deployment.gates import DEADLINE_PATCH, RollbackNeeded
    from workflows.deployment.rollout import SLOTS, Rollout
    from workflows.deployment.strategies import run_strategy

# Signals the Temporal UI may send under each R2C_UI_ACTIONS policy (updates from the API are
# checked against the caller's role instead).
UI_SIGNALS = {
    "all": frozenset({"promote", "pause", "resume", "abort", "approve"}),
    "safe": frozenset({"pause", "abort"}),
    "none": frozenset(),
}
# Signals are recorded in the audit trail from this patch on (histories from before it replay
# without the activity).
UI_SIGNAL_AUDIT_PATCH = "audit-ui-signals"
# The name a signal gives its sender, as far as it is kept (the audit actor column is 120).
MAX_SIGNAL_SENDER = 80


@workflow.defn(name=DEPLOYMENT_WORKFLOW)
class DeploymentWorkflow:
    """Deploys a version with a strategy; humans steer it with updates (API) or signals (UI)."""

    @workflow.init
    def __init__(self, inp: DeploymentInput) -> None:
        self.r = Rollout(inp)
        self._signals_audited = 0  # numbers this run's audit keys: the same on replay

    @property
    def status(self) -> DeploymentStatus:
        return self.r.status

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: DeploymentInput) -> DeploymentStatus:
        r = self.r
        r.status.started_at = workflow.now()
        r.gates.last_progress = workflow.time()
        workflow.set_current_details(plan_markdown(inp))
        main = asyncio.create_task(self._rollout())
        watch = r.gates.watch if workflow.patched(DEADLINE_PATCH) else r.gates.watch_legacy
        watchdog = asyncio.create_task(watch(inp.strategy.progress_deadline_seconds, r.paused))
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
                r.gates.cancel_requested = True  # a step that ends after all must stop there
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
            return await self._unwind(err)
        await self._finish(DeploymentState.SUCCEEDED, f"{inp.version} serves 100% of the traffic")
        return self.status

    async def _rollout(self) -> None:
        r, inp = self.r, self.r.inp
        await r.set_state(DeploymentState.PROGRESSING, "reading the current state")
        current = await acts.read_state(inp.component, inp.environment)
        stable = _serving_slot(current)
        r.status.endpoint = current.endpoint
        if stable is not None and _runs_already(current, stable, inp):
            r.status.stable_slot = stable
            r.status.reason = f"{inp.version} already serves {inp.environment}"
            return
        new = SLOTS[1] if stable == SLOTS[0] else SLOTS[0]
        r.status.new_slot, r.status.stable_slot = new, stable
        r.status.previous_version = _version_of(current, stable) if stable else None
        if any(s.slot == new for s in current.sets):
            # Left over from an earlier deployment that stopped half-way: start clean.
            await acts.remove_set(inp.component, inp.environment, new)
        await run_strategy(r, stable, new)

    # ------------------------------------------------------------------ ending

    async def _unwind(self, err: BaseException) -> DeploymentStatus:
        r = self.r
        cancelled = is_cancelled_exception(err)
        if cancelled and r.committed:
            # Too late to undo: the new version already serves all traffic. Finish the
            # clean-up and say what happened rather than calling it aborted.
            if r.cleanup is not None:
                await asyncio.gather(r.cleanup, return_exceptions=True)
            await self._finish(
                DeploymentState.SUCCEEDED,
                f"{r.inp.version} serves 100% of the traffic (a cancellation arrived after"
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
        r.ending = state  # before compensating: the abort delay depends on it
        r.unwinding = True
        r.status.phase, r.status.reason = "rolling back", reason
        workflow.set_current_details(f"**rolling back**: {reason}")
        # Shielded: a cancellation must not interrupt the undo it asked for.
        failed = await asyncio.shield(asyncio.create_task(r.saga.compensate()))
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
        status = self.status
        if state is not DeploymentState.SUCCEEDED or status.reason is None:
            status.reason = reason
        status.finished_at = workflow.now()
        phase = "done" if state is DeploymentState.SUCCEEDED else state.value
        await self.r.set_state(state, phase, always=True)
        await workflow.wait_condition(workflow.all_handlers_finished)

    # ------------------------------------------------------------------ queries, updates, signals

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> DeploymentStatus:
        return self.status

    def _active(self) -> None:
        if self.status.state in FINAL_STATES or self.r.unwinding:
            raise ValueError(f"the deployment is {self.status.state.value}; nothing to act on")

    def _approve(self, req: ActionRequest) -> None:
        assert self.r.gates.approval_needed is not None
        step, _ = self.r.gates.approval_needed
        self.status.approvals.append(
            Approval(step=step, by=req.by or "unknown", at=workflow.now(), comment=req.reason)
        )

    @workflow.update(name="promote")
    def promote(self, req: ActionRequest) -> DeploymentStatus:
        self.r.gates.promote(req)
        return self.status

    @promote.validator
    def _can_promote(self, req: ActionRequest) -> None:
        self._active()
        problem = self.r.gates.promotion_problem(req)
        if problem:
            raise ValueError(problem)

    @workflow.update(name="pause")
    def pause(self, _req: ActionRequest) -> DeploymentStatus:
        self.r.gates.user_paused = True
        return self.status

    @pause.validator
    def _can_pause(self, _req: ActionRequest) -> None:
        self._active()
        if self.r.gates.user_paused:
            raise ValueError("the deployment is already paused")

    @workflow.update(name="resume")
    def resume(self, _req: ActionRequest) -> DeploymentStatus:
        self.r.gates.user_paused = False
        return self.status

    @resume.validator
    def _can_resume(self, _req: ActionRequest) -> None:
        self._active()
        if not self.r.gates.user_paused:
            raise ValueError(
                "the deployment is not paused by hand; use promote to pass a pause step"
            )

    @workflow.update(name="abort")
    def abort(self, req: ActionRequest) -> DeploymentStatus:
        self.r.gates.abort_request = req
        return self.status

    @abort.validator
    def _can_abort(self, req: ActionRequest) -> None:  # noqa: ARG002
        self._active()
        if self.r.gates.abort_request is not None:
            raise ValueError("an abort is already under way")

    @workflow.update(name="approve")
    def approve(self, req: ActionRequest) -> DeploymentStatus:
        self._approve(req)
        return self.status

    @approve.validator
    def _can_approve(self, req: ActionRequest) -> None:
        self._active()
        problem = self.r.gates.approval_problem(req)
        if problem:
            raise ValueError(problem)

    # Signals, so "Send signal" in the Temporal UI steers a deployment too. A signal has no
    # answer and, in SDK 1.35, no sender identity that workflow code can read (the history
    # keeps it on the WorkflowExecutionSignaled event): which signals are honoured is the
    # R2C_UI_ACTIONS policy in the input; one that is not is noted in the status and dropped.
    # Each one, honoured or not, is an event in the audit trail (docs/audit.md): the gate
    # takes effect first, then the handler waits for the record (`_finish` waits for it).
    def _signal(self, name: str, req: ActionRequest | None) -> _Received:
        named = (req.by if req and req.by else "unnamed")[:MAX_SIGNAL_SENDER]
        sent = (req or ActionRequest()).model_copy(
            update={"by": f"temporal-ui ({named})", "role": None}
        )
        gates = self.r.gates
        problem: str | None = None
        if name not in UI_SIGNALS[self.r.inp.ui_actions]:
            problem = f"R2C_UI_ACTIONS={self.r.inp.ui_actions} does not honour it from the UI"
        elif self.status.state in FINAL_STATES or self.r.unwinding:
            problem = "the deployment is ending"
        elif name == "promote":
            problem = gates.promotion_problem(sent)
        elif name == "approve":
            problem = gates.approval_problem(sent)
        if problem:
            self._notice(f"signal {name} from {sent.by} ignored: {problem}")
        return _Received(name, sent, problem)

    def _notice(self, note: str) -> None:
        self.status.notices = [*self.status.notices, note][-10:]
        workflow.logger.warning(note)

    async def _audit(self, got: _Received) -> None:
        """Record the signal in the audit trail. A trail that cannot be written (the store
        away past the activity's bound) is a warning and a notice, never the deployment's
        failure; a cancellation is not swallowed."""
        if not workflow.patched(UI_SIGNAL_AUDIT_PATCH):
            return  # a history from before signals were audited
        self._signals_audited += 1
        info = workflow.info()
        detail: dict[str, str | bool | None] = {
            "via": "temporal-ui-signal",
            "honoured": got.honoured,
            "reason": got.problem[:500] if got.problem else None,
        }
        if got.sent.reason:
            detail["comment"] = got.sent.reason
        event = AuditEventRequest(
            key=f"ui-signal:{info.run_id}:{self._signals_audited}",
            actor=got.sent.by,
            action=f"deployment.{got.name}",
            target=self.r.inp.deployment_id,
            detail=detail,
        )
        try:
            await acts.record_audit(event)
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            why = _describe(err)[:300]
            self._notice(f"signal {got.name} from {got.sent.by} is not in the audit trail: {why}")

    @workflow.signal(name="promote")
    async def promote_signal(self, req: ActionRequest | None = None) -> None:
        got = self._signal("promote", req)
        if got.honoured:
            self.r.gates.promote(got.sent)
        await self._audit(got)

    @workflow.signal(name="pause")
    async def pause_signal(self, req: ActionRequest | None = None) -> None:
        got = self._signal("pause", req)
        if got.honoured:
            self.r.gates.user_paused = True
        await self._audit(got)

    @workflow.signal(name="resume")
    async def resume_signal(self, req: ActionRequest | None = None) -> None:
        got = self._signal("resume", req)
        if got.honoured:
            self.r.gates.user_paused = False
        await self._audit(got)

    @workflow.signal(name="abort")
    async def abort_signal(self, req: ActionRequest | None = None) -> None:
        got = self._signal("abort", req)
        if got.honoured and self.r.gates.abort_request is None:
            self.r.gates.abort_request = got.sent
        await self._audit(got)

    @workflow.signal(name="approve")
    async def approve_signal(self, req: ActionRequest | None = None) -> None:
        got = self._signal("approve", req)
        if got.honoured:
            self._approve(got.sent)
        await self._audit(got)


@dataclass(frozen=True)
class _Received:
    """A signal as the workflow took it: the request as sent (`by` names the UI and the name
    the sender gave), and why it was ignored (None: honoured)."""

    name: str
    sent: ActionRequest
    problem: str | None

    @property
    def honoured(self) -> bool:
        return self.problem is None


def _serving_slot(state: TargetState) -> str | None:
    serving = [(w, slot) for slot, w in state.weights.items() if w > 0]
    return max(serving)[1] if serving else None


def _runs_already(state: TargetState, slot: str, inp: DeploymentInput) -> bool:
    """The serving set runs what is asked: the version and (when the deployment names one)
    the configuration revision; another revision of the same version is a real rollout."""
    serving = next((s for s in state.sets if s.slot == slot), None)
    if serving is None or serving.version != inp.version:
        return False
    # A set started before sets recorded their revision ran without configuration: revision 0.
    return inp.config_revision is None or (serving.config_revision or 0) == inp.config_revision


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
