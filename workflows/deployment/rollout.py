"""The rollout context (Argo Rollouts' `rolloutContext`): the deployment being rolled out, its
status and saga, and the step primitives every strategy is made of. Each step that changes the
world registers its undo first; each wait that is not a lack of progress holds the deadline.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.deployments import RecordRequest
    from core.contracts import DEPLOYMENT_PHASE
    from core.models.analysis import (
        STATUS_MEASUREMENTS,
        AnalysisResult,
        AnalysisSpec,
        JudgeContext,
        Measurement,
    )
    from core.models.deployments import (
        ApprovalSpec,
        ApprovalStep,
        CanaryStrategy,
        DeploymentInput,
        DeploymentState,
        DeploymentStatus,
        PauseReason,
    )
    from core.models.infrastructure import InstanceSetSpec, TargetState
    from workflows.deployment import activities as acts
    from workflows.deployment.analysis import AnalysisRun, Target, run_analysis
    from workflows.deployment.gates import APPROVERS_PATCH, Gates, RollbackNeeded
    from workflows.deployment.saga import Saga

SLOTS = ("blue", "green")


class Rollout:
    """One deployment's rollout: what was asked, what it looks like now, what undoes it."""

    def __init__(self, inp: DeploymentInput) -> None:
        self.inp = inp
        self.status = DeploymentStatus(
            deployment_id=inp.deployment_id,
            component=inp.component,
            environment=inp.environment,
            version=inp.version,
            strategy=inp.strategy.type,
            config_revision=inp.config_revision,
        )
        self.saga = Saga()
        self.gates = Gates()
        self.gates.approvals = self.status.approvals
        self.ending: DeploymentState | None = None
        self.unwinding = False
        self.committed = False
        self.cleanup: asyncio.Task[None] | None = None

    def target(self) -> Target:
        return Target(self.inp.component, self.inp.environment, self.inp.version)

    def judge_context(self) -> JudgeContext:
        """What a judge metric needs of this deployment: its baseline version and its start
        (a `before` baseline ends there). No command: `workflow.info()` is replayed as is."""
        return JudgeContext(
            deployment_id=self.inp.deployment_id,
            strategy=self.inp.strategy.type,
            baseline_version=self.status.previous_version,
            deployment_start=workflow.info().start_time.timestamp(),
        )

    # ------------------------------------------------------------------ state and progress

    async def set_state(
        self,
        state: DeploymentState,
        phase: str,
        always: bool = False,
        pause_reason: PauseReason | None = None,
    ) -> None:
        """Record a new state in the store first, then show it: whoever sees it in the status
        query finds the same in the deployment list. A pause is recorded with its typed reason,
        which is what the record's notification is chosen by."""
        if pause_reason is not None:
            assert state is DeploymentState.PAUSED
        if state is not self.status.state or always:
            update = {"state": state, "phase": phase}
            if pause_reason is not None:
                update["pause_reason"] = pause_reason
            upcoming = self.status.model_copy(update=update)
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
        if pause_reason is not None:
            self.status.pause_reason = pause_reason

    def mark_progress(self) -> None:
        self.gates.progress_marker += 1
        self.gates.last_progress = workflow.time()
        s = self.status
        weights = ", ".join(f"{slot} {w}%" for slot, w in s.weights.items()) or "none"
        step = f"step {s.step} of {s.steps}: " if s.steps else ""
        workflow.set_current_details(f"**{s.state.value}**: {step}{s.phase}\n\nweights: {weights}")

    def record_measurement(self, m: Measurement) -> None:
        # Bounded: a long analysis must not grow the status (and each query's answer).
        self.status.measurements = [*self.status.measurements, m][-STATUS_MEASUREMENTS:]
        self.gates.last_progress = workflow.time()
        workflow.set_current_details(f"{self.status.phase}\n\n- {m.message}")

    def paused(self) -> bool:
        return self.status.state is DeploymentState.PAUSED

    # ------------------------------------------------------------------ steps

    async def start_new_set(self, slot: str, count: int) -> None:
        """Start (or grow) the new version's set; undone by routing back and removing it."""
        inp = self.inp
        stable = self.status.stable_slot
        if not self.saga.has("new set"):

            async def undo_new_set() -> None:
                # With no stable version there is nothing to route back to: no traffic at all
                # (an empty table would be refused, and would mean nothing).
                back = {stable: 100, slot: 0} if stable is not None else {slot: 0}
                await self.route(back, record=False)
                await self._delay_before_scale_down()
                await acts.remove_set(inp.component, inp.environment, slot)

            self.saga.add("new set", undo_new_set)
        await acts.ensure_instances(
            InstanceSetSpec(
                component=inp.component,
                environment=inp.environment,
                version=inp.version,
                slot=slot,
                count=count,
                env_overrides=inp.env,
                key=f"{inp.deployment_id}:{slot}:{count}",
                config_revision=inp.config_revision,
            )
        )
        self.gates.check_abort()
        self.mark_progress()

    async def scale_stable(self, slot: str, version: str, count: int, full: int) -> None:
        """Shrink the old set (rolling); undone by growing it back to `full`."""
        inp = self.inp

        def spec(n: int, key: str) -> InstanceSetSpec:
            # The old set keeps the overrides it was started with (None: the set's own).
            return InstanceSetSpec(
                component=inp.component,
                environment=inp.environment,
                version=version,
                slot=slot,
                count=n,
                env_overrides=None,
                key=key,
            )

        if not self.saga.has("old set"):

            async def undo_scale_down() -> None:
                await acts.ensure_instances(spec(full, f"{inp.deployment_id}:restore:{slot}"))

            self.saga.add("old set", undo_scale_down)
        await acts.ensure_instances(spec(count, f"{inp.deployment_id}:{slot}:{count}"))
        self.gates.check_abort()
        self.mark_progress()

    async def route(self, weights: dict[str, int], record: bool = True) -> None:
        state: TargetState = await acts.set_weights(
            self.inp.component, self.inp.environment, weights
        )
        self.status.weights = dict(state.weights)
        self.status.endpoint = state.endpoint
        if record:
            self.gates.check_abort()
            self.mark_progress()

    async def analyse(self, spec: AnalysisSpec, where: str) -> None:
        """Run an analysis; failure rolls back, an inconclusive one waits for a human."""
        self.status.phase = f"analysis {where}"
        run = AnalysisRun(
            self.target(), where, self.record_measurement, judging=self.judge_context()
        )
        with self.gates.holding():  # measured in its own time; each measurement is progress
            result = await run_analysis(spec, run)
        assert result is not None  # only a stop request ends it early, and none is made
        await self.judge_analysis(result)

    async def judge_analysis(self, result: AnalysisResult) -> None:
        self.status.analyses.append(result)
        self.mark_progress()
        if result.phase in ("failed", "error"):
            raise RollbackNeeded(DeploymentState.ROLLED_BACK, result.reason)
        if result.phase == "inconclusive":
            await self.wait_for_promotion(
                f"analysis inconclusive: {result.reason}", PauseReason.INCONCLUSIVE_ANALYSIS
            )

    async def finish_rollout(self, new: str, stable: str | None) -> None:
        """The commit point: all traffic on the new set, then the old set goes."""
        await self.route({new: 100, **({stable: 0} if stable else {})})
        self.saga.clear()  # from here on the new version is the stable one
        self.committed = True
        self.status.stable_slot, self.status.new_slot = new, None
        if stable is not None:
            self.status.phase = "removing the previous version"
            # Shielded: a cancellation now must not leave the old set half removed.
            self.cleanup = asyncio.create_task(
                acts.remove_set(self.inp.component, self.inp.environment, stable)
            )
            await asyncio.shield(self.cleanup)

    # ------------------------------------------------------------------ waits

    async def wait_for_promotion(self, words: str, reason: PauseReason) -> None:
        """Paused until someone promotes (or aborts)."""
        await self.set_state(DeploymentState.PAUSED, words, pause_reason=reason)
        self.status.paused_reason = words
        with self.gates.holding(), self.gates.gate() as gate:
            await workflow.wait_condition(lambda: self.gates.passed(gate))
        self.gates.check_abort()
        self.status.paused_reason = self.status.pause_reason = None
        await self.set_state(DeploymentState.PROGRESSING, "promoted")
        self.mark_progress()

    async def timed_pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if promoted; an abort ends it at once."""
        self.status.phase = f"pause {seconds:g}s"
        with self.gates.holding(), self.gates.gate() as gate:
            try:
                await workflow.wait_condition(
                    lambda: self.gates.passed(gate),
                    timeout=timedelta(seconds=seconds),
                    timeout_summary=f"pause {seconds:g}s",
                )
            except TimeoutError:
                pass
        self.gates.check_abort()
        self.mark_progress()

    async def delay(self, seconds: float, summary: str) -> None:
        """A fixed wait of the strategy (blue-green's scale-down delay): not a lack of progress."""
        with self.gates.holding():
            await workflow.sleep(timedelta(seconds=seconds), summary=summary)

    async def checkpoint(self) -> None:
        """Between steps: honour a pause by hand and an abort."""
        gates = self.gates
        gates.check_abort()
        if gates.user_paused:
            await self.set_state(
                DeploymentState.PAUSED, "paused by hand", pause_reason=PauseReason.BY_HAND
            )
            with gates.holding():
                await workflow.wait_condition(lambda: not gates.user_paused or gates.aborting())
            gates.check_abort()
            self.status.pause_reason = None
            await self.set_state(DeploymentState.PROGRESSING, "resumed")
            self.mark_progress()

    async def approval_gate(self, step: int, spec: ApprovalSpec) -> None:
        """A blue-green's or rolling update's approval gate (a canary's are steps)."""
        r = [x.value for x in spec.roles]
        await self.wait_for_approval(step, r, spec.timeout, spec.on_timeout, spec.approvers)

    def _canary_approvers(self, step: int) -> int:
        s = self.inp.strategy
        if isinstance(s, CanaryStrategy) and 0 < step <= len(s.steps):
            at = s.steps[step - 1]
            if isinstance(at, ApprovalStep):
                return at.approval.approvers
        return 1

    async def wait_for_approval(
        self,
        step: int,
        roles: list[str],
        window: float,
        on_timeout: str,
        approvers: int | None = None,
    ) -> None:
        gates = self.gates
        needed = approvers if approvers is not None else self._canary_approvers(step)
        # Several approvers only in runs that started with the patch; older histories never
        # asked for more than one, so they do not meet the marker.
        distinct = needed > 1 and workflow.patched(APPROVERS_PATCH)
        gates.approval_needed = (step, roles)
        gates.approvers_needed = needed if distinct else 1
        who = ", ".join(roles)
        words = f"waiting for approval by {who}"
        if distinct:
            words = f"waiting for approval by {needed} different people ({who})"
        await self.set_state(DeploymentState.PAUSED, words, pause_reason=PauseReason.APPROVAL)

        def approved() -> bool:
            if distinct:
                return len(gates.approvers_of(step)) >= needed
            return any(a.step == step for a in self.status.approvals)

        try:
            with gates.holding():
                await workflow.wait_condition(
                    lambda: approved() or gates.aborting(),
                    timeout=timedelta(seconds=window),
                    timeout_summary="approval window",
                )
        except TimeoutError:
            if on_timeout == "abort":
                raise RollbackNeeded(
                    DeploymentState.ABORTED, f"no approval within {window:g}s at step {step}"
                ) from None
        finally:
            gates.approval_needed = None
            gates.approvers_needed = 1
            self.status.pause_reason = None
        gates.check_abort()
        await self.set_state(DeploymentState.PROGRESSING, "approved")
        self.mark_progress()

    async def _delay_before_scale_down(self) -> None:
        delay = getattr(self.inp.strategy, "abort_scale_down_delay_seconds", 0)
        if delay and self.ending is DeploymentState.ABORTED:
            await workflow.sleep(timedelta(seconds=delay), summary="abort scale-down delay")
