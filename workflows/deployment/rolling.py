"""Rolling: the new version replaces the old in batches, traffic following the counts
(Kubernetes' `maxSurge`/`maxUnavailable`).

With an `analysis`, the new version is measured after each batch, before the next one: after
the last batch too, before `finish_rollout`, while the old set can still be rolled back to
(a rolling update has no control group, so a judge metric's baseline is the target's own
window before the deployment). The analysis path needs no patch: histories recorded before
the field existed cannot carry it (the strategy forbids unknown fields), so they never
reach it."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.models.deployments import RollingStrategy
    from workflows.deployment.rollout import Rollout


def _weights(stable: str, new: str, stable_count: int, new_count: int) -> dict[str, int]:
    if new_count == 0:
        return {stable: 100, new: 0}
    if stable_count == 0:
        return {stable: 0, new: 100}
    share = round(100 * new_count / (new_count + stable_count))
    return {stable: 100 - share, new: share}


async def run(r: Rollout, s: RollingStrategy, stable: str, new: str) -> None:
    replicas = r.inp.replicas_resolved
    old_version = r.status.previous_version or ""
    batch = s.batch
    surge_first = s.batch_size is not None or s.max_surge > 0
    new_count, old_count = 0, replicas
    r.status.steps = s.batches(replicas)
    analysed = s.analysed_batches(replicas)
    if s.approval is not None:
        await r.approval_gate(1, s.approval)
    while new_count < replicas:
        r.status.step += 1
        await r.checkpoint()
        size = replicas - new_count if r.gates.promote_full else min(batch, replicas - new_count)
        r.status.phase = f"batch {r.status.step} of {r.status.steps}"
        if surge_first:
            new_count += size
            await r.start_new_set(new, new_count)
            old_count = replicas - new_count
            await r.route(_weights(stable, new, old_count, new_count))
            await r.scale_stable(stable, old_version, old_count, replicas)
        else:
            old_count = max(0, old_count - size)
            await r.route(_weights(stable, new, old_count, new_count))
            await r.scale_stable(stable, old_version, old_count, replicas)
            new_count += size
            await r.start_new_set(new, new_count)
            await r.route(_weights(stable, new, old_count, new_count))
        if s.analysis is not None and (r.status.step in analysed or new_count >= replicas):
            await r.analyse(s.analysis, f"after batch {r.status.step} of {r.status.steps}")
        if s.pause_between_batches and new_count < replicas:
            await r.timed_pause(s.pause_between_batches)
    await r.finish_rollout(new, stable)
