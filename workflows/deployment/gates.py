"""What humans and time do to a rollout: gates a promotion passes, pauses, approvals, aborts,
and the progress deadline (Argo Rollouts' `pause.go`, in the shape of Temporal's workflow state).

`Gates` is plain state with the rules over it; the waits that also record a new state live on
the `Rollout` (they need the store), so this module depends on nothing of the saga's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.models.apikeys import Role
    from core.models.deployments import ActionRequest, Approval, DeploymentState

# The patch that stopped counting pauses against the progress deadline and arms one timer per
# deadline instead of one per progress mark; older histories replay on the old watchdog.
DEADLINE_PATCH = "progress-deadline-holds"
# The patch that lets an approval gate wait for several different approvers; histories
# recorded before it only ever needed one.
APPROVERS_PATCH = "approval-different-approvers"


class RollbackNeeded(Exception):
    """The rollout must be undone: a failed analysis, an abort, the progress deadline."""

    def __init__(self, state: DeploymentState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


@dataclass
class Gates:
    """The state humans and time steer: open gates, promotions, pauses, aborts, holds."""

    # A promotion applies to the gate open when it arrives (a pause, an inconclusive
    # analysis, a blue-green promotion), never to one that opens later.
    open_gate: int = 0  # 0: none open
    gates_opened: int = 0
    promoted_gate: int = 0
    promote_full: bool = False
    user_paused: bool = False
    abort_request: ActionRequest | None = None
    approval_needed: tuple[int, list[str]] | None = None
    approvers_needed: int = 1
    # The status's list of approvals (shared, not copied): who approved which step so far.
    approvals: list[Approval] = field(default_factory=list)
    cancel_requested: bool = False
    # Waits that do not count against the progress deadline (pauses, delays, analyses).
    holds: int = 0
    last_progress: float = 0.0
    progress_marker: int = 0  # read by the legacy watchdog only

    # ------------------------------------------------------------------ holds and gates

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
        # Not a progress mark: that re-arms the legacy watchdog (a new timer command, which
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

    def passed(self, gate: int) -> bool:
        return self.promoted_gate == gate or self.promote_full or self.aborting()

    def aborting(self) -> bool:
        return self.abort_request is not None or self.cancel_requested

    def check_abort(self) -> None:
        """Between and after steps: stop here if an abort or a cancellation came."""
        if self.cancel_requested:
            # An activity that completed although its cancellation was asked for returns
            # normally (WAIT_CANCELLATION_COMPLETED): the rollout stops at the next check.
            raise asyncio.CancelledError()
        if self.abort_request is not None:
            who = self.abort_request.by or "someone"
            why = f": {self.abort_request.reason}" if self.abort_request.reason else ""
            raise RollbackNeeded(DeploymentState.ABORTED, f"aborted by {who}{why}")

    # ------------------------------------------------------------------ human actions

    def promotion_problem(self, req: ActionRequest) -> str | None:
        if self.approval_needed is not None:
            return "this step waits for an approval, not a promotion: use approve"
        if not self.open_gate and not req.full:
            return (
                "nothing waits for a promotion now (a promotion passes the pause, inconclusive"
                ' analysis or blue-green promotion that is open); send {"full": true} to skip'
                " every remaining step"
            )
        return None

    def promote(self, req: ActionRequest) -> None:
        if self.open_gate:
            self.promoted_gate = self.open_gate
        if req.full:
            self.promote_full = True
            self.user_paused = False

    def approval_problem(self, req: ActionRequest) -> str | None:
        if self.approval_needed is None:
            return "no step is waiting for an approval"
        step, roles = self.approval_needed
        # Roles are ordered: a role approves where any role at or below it may.
        if req.role is not None and not any(req.role.allows(Role(r)) for r in roles):
            return f"this approval needs one of the roles {roles} or higher; yours is {req.role}"
        if self.approvers_needed > 1:
            if req.role is None:
                # A signal's sender names itself: it cannot count as one of several people.
                return (
                    f"this step needs {self.approvers_needed} different approvers: approve "
                    "through the API, whose keys say who approves"
                )
            if req.by in self.approvers_of(step):
                return (
                    f"{req.by} already approved this step; it needs "
                    f"{self.approvers_needed} different approvers"
                )
        return None

    def approvers_of(self, step: int) -> set[str]:
        """The different people who approved `step` so far."""
        return {a.by for a in self.approvals if a.step == step}

    # ------------------------------------------------------------------ the deadline

    async def watch(self, deadline: float, paused: Callable[[], bool]) -> BaseException:
        """Fails the rollout when it makes no progress for `deadline` seconds. Time in
        pauses, delays and analyses is not counted; one timer runs per deadline, not per
        step."""
        while True:
            if self.holds or paused():
                await workflow.wait_condition(lambda: not self.holds and not paused())
                self.last_progress = workflow.time()
                continue
            remaining = self.last_progress + deadline - workflow.time()
            if remaining <= 0:
                return RollbackNeeded(
                    DeploymentState.FAILED,
                    f"no progress for {deadline:g}s (progress deadline exceeded)",
                )
            await workflow.sleep(timedelta(seconds=remaining), summary="progress deadline")

    async def watch_legacy(self, deadline: float, paused: Callable[[], bool]) -> BaseException:
        """The watchdog of histories recorded before DEADLINE_PATCH (a timer per mark)."""
        limit = timedelta(seconds=deadline)
        while True:
            marker = self.progress_marker
            try:
                await workflow.wait_condition(
                    lambda marker=marker: self.progress_marker != marker or paused(),  # type: ignore[misc]
                    timeout=limit,
                    timeout_summary="progress deadline",
                )
            except TimeoutError:
                return RollbackNeeded(
                    DeploymentState.FAILED,
                    f"no progress for {deadline:g}s (progress deadline exceeded)",
                )
            if paused():
                await workflow.wait_condition(lambda: not paused())
