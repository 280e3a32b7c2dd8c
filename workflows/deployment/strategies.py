"""Which strategy runs: the first deployment of a target skips the steps, as in Argo Rollouts."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.models.deployments import BlueGreenStrategy, CanaryStrategy
    from workflows.deployment import blue_green, canary, rolling
    from workflows.deployment.rollout import Rollout


async def run_strategy(r: Rollout, stable: str | None, new: str) -> None:
    if stable is None:
        # The first deployment has nothing to compare with and no traffic to protect.
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
