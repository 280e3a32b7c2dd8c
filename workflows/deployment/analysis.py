"""Running an analysis inside the workflow: measurements by activity, judgement here.

Argo Rollouts' semantics: each metric is measured `count` times, `interval` apart, after
`initial_delay`; a measurement is failed when `failure_condition` holds or
`success_condition` does not, inconclusive when neither decides (or nothing was measured);
`failure_limit`, `inconclusive_limit` and `consecutive_error_limit` say how many are tolerated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.models.analysis import (
        AnalysisResult,
        AnalysisSpec,
        Measurement,
        MeasureRequest,
        MetricPhase,
        MetricResult,
        MetricSpec,
        MetricValue,
        RouterCounters,
    )
    from core.conditions import ConditionError, evaluate
    from workflows.deployment import activities as acts

Recorder = Callable[[Measurement], None]


def judge(spec: MetricSpec, value: float | None) -> tuple[MetricPhase, str]:
    """The phase of one measured value, and the words that explain it."""
    if value is None:
        return "inconclusive", "no requests reached the new version, so nothing to judge"
    shown = f"{spec.name} {value:.4g}"
    try:
        if spec.failure_condition and evaluate(spec.failure_condition, value):
            return "failed", f"{shown}: failure condition `{spec.failure_condition}` holds"
        if spec.success_condition:
            if evaluate(spec.success_condition, value):
                return "successful", f"{shown}: `{spec.success_condition}` holds"
            return "failed", f"{shown}: success condition `{spec.success_condition}` does not hold"
    except ConditionError as err:
        return "error", f"{shown}: {err}"
    if spec.failure_condition:
        return "successful", f"{shown}: failure condition `{spec.failure_condition}` does not hold"
    return "inconclusive", f"{shown}: no condition to judge it by"


async def run_metric(
    spec: MetricSpec,
    target: tuple[str, str, str],
    since: RouterCounters | None,
    where: str,
    record: Recorder,
) -> MetricResult:
    component, environment, version = target
    if spec.initial_delay:
        await workflow.sleep(timedelta(seconds=spec.initial_delay), summary=f"{spec.name} delay")
    counts: dict[MetricPhase, int] = {"successful": 0, "failed": 0, "inconclusive": 0, "error": 0}
    consecutive_errors = 0
    measurements: list[Measurement] = []
    total = spec.measurements
    for index in range(total):
        if index and spec.interval:
            await workflow.sleep(
                timedelta(seconds=spec.interval), summary=f"{spec.name}: next measurement"
            )
        got: MetricValue = await acts.measure(
            MeasureRequest(
                component=component,
                environment=environment,
                version=version,
                metric=spec,
                since=since,
            )
        )
        if got.error is not None:
            phase: MetricPhase = "error"
            words = f"{spec.name} could not be measured: {got.error}"
            consecutive_errors += 1
        else:
            consecutive_errors = 0
            since = got.counters or since
            phase, words = judge(spec, got.value)
        counts[phase] += 1
        m = Measurement(
            metric=spec.name,
            index=index + 1,
            value=got.value,
            phase=phase,
            at=workflow.now(),
            message=f"{words} {where}, measurement {index + 1} of {total}",
        )
        measurements.append(m)
        record(m)
        if spec.failure_limit >= 0 and counts["failed"] > spec.failure_limit:
            return MetricResult(metric=spec.name, phase="failed", measurements=measurements,
                                reason=m.message)  # fmt: skip
        if counts["inconclusive"] > spec.inconclusive_limit:
            return MetricResult(metric=spec.name, phase="inconclusive",
                                measurements=measurements, reason=m.message)  # fmt: skip
        if consecutive_errors > spec.consecutive_error_limit:
            return MetricResult(metric=spec.name, phase="error", measurements=measurements,
                                reason=m.message)  # fmt: skip
    last = measurements[-1].message
    return MetricResult(
        metric=spec.name, phase="successful", measurements=measurements, reason=last
    )


async def run_analysis(
    spec: AnalysisSpec,
    target: tuple[str, str, str],
    since: RouterCounters | None,
    where: str,
    record: Recorder,
) -> AnalysisResult:
    """Every metric at once; the worst phase of the deciding (not dry-run) metrics wins."""
    results = list(
        await asyncio.gather(*(run_metric(m, target, since, where, record) for m in spec.metrics))
    )
    deciding = [r for r, m in zip(results, spec.metrics, strict=True) if not m.dry_run]
    for phase in ("failed", "error", "inconclusive"):
        culprits = [r for r in deciding if r.phase == phase]
        if culprits:
            return AnalysisResult(phase=phase, metrics=results, reason=culprits[0].reason)
    return AnalysisResult(
        phase="successful", metrics=results, reason=f"every metric passed {where}"
    )
