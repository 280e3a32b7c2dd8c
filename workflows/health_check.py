"""`component-health-check`: probe every component with running instances, in parallel.

One round by default; with `rounds` > 1 it becomes a watch that probes every
`interval_seconds`, continuing as new when the history grows long. Each round ends by
recording per-component health states in the store (runs started before that step existed
replay without it: `RECORD_HEALTH_PATCH`), then by reading the routers' counters for the
components' SLOs (`SLO_SAMPLES_PATCH`, likewise).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.health import HealthActivities
    from activities.slo import SloActivities
    from core.contracts import HEALTH_CHECK_WORKFLOW, STATUS_QUERY
    from core.models.health import (
        ComponentHealth,
        HealthCheckInput,
        HealthCheckProgress,
        HealthRecordRequest,
        HealthReport,
        HealthRound,
        HealthState,
        TargetQuery,
    )
    from workflows.retry import PROBE, QUICK

# Probes answer "unhealthy" themselves; a retry only covers the activity itself failing.

RECORD_HEALTH_PATCH = "record-component-health"
SLO_SAMPLES_PATCH = "sample-slo-counters"


class HealthWatchState(HealthCheckInput):
    """The input plus what a continued-as-new run carries over."""

    rounds_done: int = 0
    unhealthy_rounds: int = 0
    last: HealthRound | None = None


@workflow.defn(name=HEALTH_CHECK_WORKFLOW)
class ComponentHealthCheckWorkflow:
    """Probes components' health endpoints and reports which are healthy."""

    def __init__(self) -> None:
        self._progress = HealthCheckProgress(
            phase="starting", round=0, rounds=0, components_probed=0, components_total=0
        )

    @workflow.run
    async def run(self, req: HealthWatchState | None = None) -> HealthReport:
        # The input is a `HealthCheckInput`; the extra fields only come from continue-as-new.
        state = req or HealthWatchState()
        self._progress.rounds = state.rounds
        while state.rounds_done < state.rounds:
            state.last = await self._round(state, state.rounds_done + 1)
            state.rounds_done += 1
            if any(c.state is not HealthState.HEALTHY for c in state.last.components):
                state.unhealthy_rounds += 1
            if state.rounds_done >= state.rounds:
                break
            self._progress.phase = "waiting"
            await workflow.sleep(
                timedelta(seconds=state.interval_seconds),
                summary=f"next round in {state.interval_seconds:g}s",
            )
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(state)
        self._progress.phase = "done"
        return HealthReport(
            rounds_completed=state.rounds_done,
            last=state.last,
            unhealthy_rounds=state.unhealthy_rounds,
        )

    async def _round(self, req: HealthCheckInput, number: int) -> HealthRound:
        self._progress.phase = "listing"
        self._progress.round = number
        targets = await workflow.execute_activity_method(
            HealthActivities.list_health_targets,
            TargetQuery(components=req.components, environment=req.environment),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=PROBE,
            summary="list components with running instances",
        )
        self._progress.phase = "probing"
        self._progress.components_total = len(targets)
        self._progress.components_probed = 0

        async def probe(target_index: int) -> ComponentHealth:
            target = targets[target_index]
            result = await workflow.execute_activity_method(
                HealthActivities.probe_component,
                target,
                # Every instance is probed at once, so one timeout plus slack bounds the step.
                start_to_close_timeout=timedelta(seconds=target.timeout_seconds + 10),
                retry_policy=PROBE,
                summary=f"probe {target.component}",
            )
            self._progress.components_probed += 1
            return result

        components = list(await asyncio.gather(*(probe(i) for i in range(len(targets)))))
        result = HealthRound(round=number, checked_at=workflow.now(), components=components)
        if workflow.patched(RECORD_HEALTH_PATCH):
            self._progress.phase = "recording"
            await workflow.execute_activity_method(
                HealthActivities.record_component_health,
                HealthRecordRequest(
                    round=result, components=req.components, environment=req.environment
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=QUICK,
                summary="record component health states",
            )
        if workflow.patched(SLO_SAMPLES_PATCH):
            self._progress.phase = "sampling"
            # An unreadable router is in the result, and a failed step is only logged: the
            # health round stands, and the next reading covers the gap (counters accumulate).
            try:
                await workflow.execute_activity_method(
                    SloActivities.sample_slo_counters,
                    TargetQuery(components=req.components, environment=req.environment),
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=PROBE,
                    summary="read the routers' counters for the SLOs",
                )
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise  # the check is being cancelled: that is no failed reading to skip
                workflow.logger.warning("SLO readings not kept this round: %s", err.cause)
        self._progress.last = result
        workflow.set_current_details(_details(result))
        return result

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> HealthCheckProgress:
        return self._progress


def _details(result: HealthRound) -> str:
    lines = [f"**Round {result.round}** at {result.checked_at.isoformat()}", ""]
    lines += [
        f"- {c.component}: {c.state.value} ({c.healthy_instances}/{c.total_instances})"
        for c in result.components
    ] or ["- no component has running instances"]
    return "\n".join(lines)
