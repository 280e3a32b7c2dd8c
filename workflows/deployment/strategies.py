"""Which strategy runs: the first deployment of a target skips the steps, as in Argo Rollouts."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.models.deployments import (
        ApprovalSpec,
        ApprovalStep,
        BlueGreenStrategy,
        CanaryStrategy,
    )
    from workflows.deployment import blue_green, canary, rolling
    from workflows.deployment.rollout import Rollout

# The patch that makes a first deployment wait for the approval a policy put in its plan;
# histories recorded before it started first deployments at once.
FIRST_APPROVAL_PATCH = "first-deployment-policy-approval"


def _policy_gate(r: Rollout) -> tuple[int, ApprovalSpec] | None:
    """The approval gate an environment policy added to the plan, and its step number."""
    s = r.inp.strategy
    if isinstance(s, CanaryStrategy):
        for i, step in enumerate(s.steps, 1):
            if isinstance(step, ApprovalStep) and step.approval.required_by:
                return i, step.approval
        return None
    if s.approval is not None and s.approval.required_by:
        return 1, s.approval
    return None


async def run_strategy(r: Rollout, stable: str | None, new: str) -> None:
    if stable is None:
        # The first deployment has nothing to compare with and no traffic to protect, but a
        # policy's approval is about who may change the environment at all: it still holds.
        gate = _policy_gate(r)
        if gate is not None and workflow.patched(FIRST_APPROVAL_PATCH):
            await r.approval_gate(*gate)
        r.status.phase = "first deployment: starting the instances"
        await r.start_new_set(new, r.inp.replicas_resolved)
        await r.finish_rollout(new, None)
        return
    strategy = r.inp.strategy
    if isinstance(strategy, CanaryStrategy):
        await canary.run(r, strategy, stable, new)
    elif isinstance(strategy, BlueGreenStrategy):
        await blue_green.run(r, strategy, stable, new)
    else:
        await rolling.run(r, strategy, stable, new)
