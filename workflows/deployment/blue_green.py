"""Blue-green: a preview set beside the stable one, checked, then one atomic switch
(Argo Rollouts' `bluegreen.go`)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.models.deployments import BlueGreenStrategy, PauseReason
    from workflows.deployment.rollout import Rollout


async def run(r: Rollout, s: BlueGreenStrategy, stable: str, new: str) -> None:
    replicas = r.inp.replicas_resolved
    preview = min(s.preview_replica_count or replicas, replicas)
    r.status.steps, r.status.step = 4, 1
    r.status.phase = "starting the preview set"
    await r.start_new_set(new, preview)
    await r.route({stable: 100, new: 0})
    r.status.step = 2
    if s.pre_promotion_analysis is not None:
        await r.analyse(s.pre_promotion_analysis, "before promotion")
    await r.checkpoint()
    if not s.auto_promotion_enabled:
        await r.wait_for_promotion("waiting for promotion", PauseReason.PROMOTION)
    elif s.auto_promotion_seconds:
        await r.timed_pause(s.auto_promotion_seconds)
    if s.approval is not None:
        await r.approval_gate(2, s.approval)
    r.status.step = 3
    if preview < replicas:
        r.status.phase = "scaling the preview set up"
        await r.start_new_set(new, replicas)
    r.status.phase = "switching all traffic"
    await r.route({stable: 0, new: 100})  # one atomic switch
    r.status.step = 4
    if s.post_promotion_analysis is not None:
        await r.analyse(s.post_promotion_analysis, "after promotion")
    if s.scale_down_delay_seconds:
        r.status.phase = f"keeping the old set {s.scale_down_delay_seconds:g}s"
        await r.delay(s.scale_down_delay_seconds, "scale-down delay")
    await r.finish_rollout(new, stable)
