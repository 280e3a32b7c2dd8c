"""Running an analysis inside a workflow: measurements by activity, judgement here.

Argo Rollouts' semantics: each metric is measured `count` times, `interval` apart, after
`initial_delay`; a measurement is failed when `failure_condition` holds or
`success_condition` does not, inconclusive when neither decides; `failure_limit`,
`inconclusive_limit` and `consecutive_error_limit` say how many are tolerated.

Beyond Argo: a measurement that finds too few requests to judge (`min_requests`) is *no data*,
not a verdict. It counts toward nothing, and the metric is measured again after `interval`
(1 s without one); only data missing for longer than `MetricSpec.no_data_bound` (or for more
than `NO_DATA_RETRIES` retries) makes a measurement inconclusive. So a bad canary measured a
moment after its weight change is judged on its requests once they arrive, instead of pausing
for a human because the first look found nothing. The window of a built-in metric starts when
the analysis starts (a baseline read of the router's counters), never when the router started.

A judge metric (`MetricSpec.judge`) is measured by the judging activity (`judge-window`): the
new version against its baseline over the window from when the metric began measuring (after
its initial delay) to now, judged again as the window grows. Its verdict decides through
`judge.on_verdict`: continue is a successful measurement, approval an inconclusive one (the
rollout pauses for promotion), rollback a failed one. A judgement in which a metric has no
data is a no-data measurement while the no-data retries last; after that it is judged as it
stands (the judge's half-no-data rule then decides). Judge metrics are new: no history
recorded before them holds one, so their commands need no patch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.conditions import ConditionError, evaluate
    from core.judge.result import JudgeResult
    from core.judge.spec import VerdictAction
    from core.models.analysis import (
        NO_DATA_RETRIES,
        RESULT_MEASUREMENTS,
        AnalysisResult,
        AnalysisSpec,
        JudgeContext,
        JudgeWindowRequest,
        Measurement,
        MeasurementPhase,
        MeasureRequest,
        MetricPhase,
        MetricProgress,
        MetricResult,
        MetricSpec,
        MetricValue,
    )
    from workflows.deployment import activities as acts

Recorder = Callable[[Measurement], None]
# The patch that brought baseline windows and no-data retries: histories recorded before it
# replay on the old rule (a window from the router's start; no value is inconclusive).
WINDOW_PATCH = "analysis-window-and-no-data"
MEASUREMENTS_METRIC = "r2c_analysis_measurements_total"


@dataclass
class Target:
    """What an analysis measures: the new version of a deployed target."""

    component: str
    environment: str
    version: str


@dataclass
class AnalysisRun:
    """How one analysis runs: where (for messages), what to call per measurement, and when to
    stop early so that a child workflow can continue as new."""

    target: Target
    where: str
    record: Recorder
    stop_requested: Callable[[], bool] = lambda: False
    # Metrics measured until the rollout ends rather than `count` times (background).
    until_cancelled: frozenset[str] = frozenset()
    interruptible: bool = False  # waits end early when a stop is requested
    # The deployment, for judge metrics (their baseline version, the deployment's start).
    judging: JudgeContext | None = None


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


# What a verdict's action makes of the measurement.
ACTION_PHASE: dict[VerdictAction, MetricPhase] = {
    "continue": "successful",
    "approval": "inconclusive",
    "rollback": "failed",
}
ACTION_WORDS: dict[VerdictAction, str] = {
    "continue": "continues",
    "approval": "waits for approval",
    "rollback": "rolls back",
}
MAX_JUDGE_WORDS = 1500


def judge_words(spec: MetricSpec, result: JudgeResult) -> tuple[MetricPhase, str]:
    """The phase of a judgement under the metric's verdict policy, and why, in words: the
    verdict, the score, what it makes the rollout do, and each failing metric's reason."""
    assert spec.judge is not None
    action = spec.judge.on_verdict.action(result.verdict)
    failing = [m.reason for m in result.metrics if m.verdict != "pass"]
    words = f"{spec.name}: {result.reason}; the rollout {ACTION_WORDS[action]}"
    if failing:
        words += " (" + "; ".join(failing) + ")"
    if len(words) > MAX_JUDGE_WORDS:
        words = words[: MAX_JUDGE_WORDS - 1] + "…"
    return ACTION_PHASE[action], words


def _missing(spec: MetricSpec, result: JudgeResult) -> list[str]:
    """The judged metrics that had no data (those whose no data is ignored left out)."""
    assert spec.judge is not None
    ignored = {m.name for m in spec.judge.metrics if m.nodata == "ignore"}
    return [m.metric for m in result.metrics if m.verdict == "nodata" and m.metric not in ignored]


def _count(target: Target, metric: str, phase: MeasurementPhase) -> None:
    # A workflow metric is no command (nothing in the history, no patch) and is not counted
    # again on replay. The worker's runtime exports it as is, no `_total` added.
    workflow.metric_meter().create_counter(
        MEASUREMENTS_METRIC, "Analysis measurements taken, by phase"
    ).add(
        1,
        {
            "component": target.component,
            "environment": target.environment,
            "metric": metric,
            "phase": phase,
        },
    )


def _no_data(spec: MetricSpec, got: MetricValue) -> bool:
    if got.value is None:
        return True
    return spec.judges_requests and (got.requests or 0) < spec.min_requests


class _MetricRunner:
    """Measures one metric until it decides, its count is done, or a stop is requested."""

    def __init__(
        self, spec: MetricSpec, progress: MetricProgress, run: AnalysisRun, new_rules: bool
    ) -> None:
        self.spec = spec
        self.p = progress
        self.ctx = run
        self.new_rules = new_rules
        self.until_cancelled = spec.name in run.until_cancelled

    def _request(self, baseline: bool = False) -> MeasureRequest:
        t = self.ctx.target
        return MeasureRequest(
            component=t.component,
            environment=t.environment,
            version=t.version,
            metric=self.spec,
            since=self.p.since,
            baseline=baseline,
        )

    async def _wait(self, seconds: float, summary: str) -> bool:
        """Wait; False when a stop was requested first (the wait is kept for the next run)."""
        if not self.ctx.interruptible:
            await workflow.sleep(timedelta(seconds=seconds), summary=summary)
            return True
        try:
            await workflow.wait_condition(
                self.ctx.stop_requested, timeout=timedelta(seconds=seconds), timeout_summary=summary
            )
        except TimeoutError:
            return True
        return False

    def _total(self) -> str:
        return "∞" if self.until_cancelled else str(self.spec.measurements)

    def _measurement(
        self,
        phase: MeasurementPhase,
        value: float | None,
        words: str,
        judgement: JudgeResult | None = None,
    ) -> Measurement:
        index = self.p.judged + (0 if phase == "no_data" else 1)
        m = Measurement(
            metric=self.spec.name,
            index=index,
            value=value,
            phase=phase,
            at=workflow.now(),
            message=f"{words} {self.ctx.where}, measurement {index} of {self._total()}",
            judgement=judgement,
        )
        self.p.recent = [*self.p.recent, m][-RESULT_MEASUREMENTS:]
        self.ctx.record(m)
        _count(self.ctx.target, self.spec.name, phase)
        return m

    def _result(self, phase: MetricPhase, reason: str) -> MetricResult:
        return MetricResult(
            metric=self.spec.name, phase=phase, measurements=list(self.p.recent), reason=reason
        )

    async def run(self) -> MetricResult | None:
        """The metric's verdict; None when stopped early for a continue-as-new."""
        spec, p = self.spec, self.p
        if self.new_rules and spec.query is None and spec.judge is None and not p.baseline_read:
            got = await acts.measure(self._request(baseline=True))
            p.since, p.baseline_read = got.counters, True
        if not p.delayed:
            if spec.initial_delay and not await self._wait(
                spec.initial_delay, f"{spec.name} delay"
            ):
                return None
            p.delayed = True
        if spec.judge is not None and p.window_start is None:
            p.window_start = workflow.now().timestamp()
        while self.until_cancelled or p.judged < spec.measurements:
            if self.ctx.stop_requested():
                return None
            if p.next_wait and not await self._wait(p.next_wait, f"{spec.name}: next measurement"):
                return None
            p.next_wait = 0.0
            verdict = await self._measure_once()
            if verdict is not None:
                return verdict
        last = p.recent[-1].message if p.recent else f"{spec.name}: nothing measured"
        return self._result("successful", last)

    def _judge_request(self) -> JudgeWindowRequest | str:
        """The judging activity's request; words instead when it cannot be made."""
        spec, t, ctx = self.spec, self.ctx.target, self.ctx.judging
        assert spec.judge is not None and self.p.window_start is not None
        if ctx is None or ctx.baseline_version is None:
            return "there is no previous version to compare the new one with"
        return JudgeWindowRequest(
            component=t.component,
            environment=t.environment,
            version=t.version,
            baseline_version=ctx.baseline_version,
            baseline=spec.judge.resolved_baseline(ctx.strategy),
            window_start=self.p.window_start,
            deployment_start=ctx.deployment_start,
            deployment_id=ctx.deployment_id,
            metric=spec.name,
            where=self.ctx.where[:200],
            judge=spec.judge,
        )

    async def _judge_once(self) -> MetricValue:
        req = self._judge_request()
        if isinstance(req, str):
            return MetricValue(error=req)
        return await acts.judge_window(req)

    def _judge_no_data(self, got: MetricValue) -> bool:
        """Whether a judgement lacking data is measured again (a no-data measurement): only
        while the retries last; after that it is judged as it stands."""
        spec, p = self.spec, self.p
        assert got.judgement is not None
        missing = _missing(spec, got.judgement)
        if not missing:
            return False
        if p.no_data_retries >= NO_DATA_RETRIES or p.no_data_seconds >= spec.no_data_bound:
            return False
        retry = spec.interval or 1.0
        p.no_data_retries += 1
        p.no_data_seconds += retry
        p.next_wait = retry
        words = (
            f"{spec.name}: no data yet for {', '.join(missing)}; judging again in {retry:g}s"
            f" (waited {p.no_data_seconds:g}s of at most {spec.no_data_bound:g}s)"
        )
        self._measurement("no_data", got.value, words, got.judgement)
        return True

    async def _measure_once(self) -> MetricResult | None:
        spec, p = self.spec, self.p
        judging = spec.judge is not None
        got: MetricValue = await (self._judge_once() if judging else acts.measure(self._request()))
        phase: MetricPhase
        if judging and got.error is None and got.judgement is None:
            got = MetricValue(error="the judging activity returned no judgement")
        if got.error is not None:
            phase, words = "error", f"{spec.name} could not be measured: {got.error}"
            p.consecutive_errors += 1
        elif got.judgement is not None:
            if self._judge_no_data(got):
                return None
            p.consecutive_errors = 0
            phase, words = judge_words(spec, got.judgement)
        elif self.new_rules and _no_data(spec, got):
            retry = spec.interval or 1.0
            if p.no_data_retries < NO_DATA_RETRIES and p.no_data_seconds < spec.no_data_bound:
                p.no_data_retries += 1
                p.no_data_seconds += retry
                p.next_wait = retry
                self._measurement("no_data", got.value, self._no_data_words(got, retry))
                return None
            p.consecutive_errors = 0
            phase = "inconclusive"
            words = (
                f"{spec.name}: no data after waiting {p.no_data_seconds:g}s "
                f"({self._seen(got)}), so nothing to judge"
            )
        else:
            p.consecutive_errors = 0
            p.since = got.counters or p.since
            phase, words = judge(spec, got.value)
        p.counts[phase] = p.counts.get(phase, 0) + 1
        p.next_wait = spec.interval or 0.0
        m = self._measurement(phase, got.value, words, got.judgement)
        if spec.failure_limit >= 0 and p.counts.get("failed", 0) > spec.failure_limit:
            return self._result("failed", m.message)
        if p.counts.get("inconclusive", 0) > spec.inconclusive_limit:
            return self._result("inconclusive", m.message)
        if p.consecutive_errors > spec.consecutive_error_limit:
            return self._result("error", m.message)
        p.judged += 1
        return None

    def _seen(self, got: MetricValue) -> str:
        if got.value is None and got.requests is None:
            return "the query returned no value"
        n, least = got.requests or 0, max(1, self.spec.min_requests)
        return f"{n} request{'' if n == 1 else 's'} reached the new version, fewer than {least}"

    def _no_data_words(self, got: MetricValue, retry: float) -> str:
        return (
            f"{self.spec.name}: no data yet ({self._seen(got)}); measuring again in {retry:g}s "
            f"(waited {self.p.no_data_seconds:g}s of at most {self.spec.no_data_bound:g}s)"
        )


def new_rules() -> bool:
    """Whether this analysis runs on the baseline/no-data rules (see WINDOW_PATCH)."""
    return workflow.patched(WINDOW_PATCH)


async def run_analysis(
    spec: AnalysisSpec,
    run: AnalysisRun,
    progress: dict[str, MetricProgress] | None = None,
) -> AnalysisResult | None:
    """Every metric at once; the worst phase of the deciding (not dry-run) metrics wins.

    None when a stop was requested before every metric decided (`progress` then holds where
    each one stands, for the next run)."""
    rules = new_rules()
    states = progress if progress is not None else {}
    tasks = [
        asyncio.create_task(
            _MetricRunner(m, states.setdefault(m.name, MetricProgress()), run, rules).run()
        )
        for m in spec.metrics
    ]
    try:
        pending: list[asyncio.Task[MetricResult | None]] = list(tasks)
        while pending:
            _, still = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending = list(still)
            # A deciding metric that failed settles the analysis: the others need not go on
            # (a background metric would otherwise measure until the rollout ends).
            if any(_settles(t, m) for t, m in zip(tasks, spec.metrics, strict=True)):
                break
    except GeneratorExit:  # evicted from the worker's cache: nothing may be awaited now
        raise
    except BaseException:
        await _stop(tasks)
        raise
    await _stop(tasks)
    outcomes = [t.result() if t.done() and not t.cancelled() else None for t in tasks]
    verdicts = [o for o, m in zip(outcomes, spec.metrics, strict=True) if o and not m.dry_run]
    for phase in ("failed", "error", "inconclusive"):
        culprits = [r for r in verdicts if r.phase == phase]
        if culprits:
            return AnalysisResult(
                phase=phase, metrics=[o for o in outcomes if o], reason=culprits[0].reason
            )
    if any(o is None for o in outcomes):
        return None  # stopped for a continue-as-new before every metric decided
    results = [o for o in outcomes if o is not None]
    return AnalysisResult(
        phase="successful", metrics=results, reason=f"every metric passed {run.where}"
    )


async def _stop(tasks: list[asyncio.Task[MetricResult | None]]) -> None:
    for task in tasks:
        if not task.done():
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _settles(task: asyncio.Task[MetricResult | None], spec: MetricSpec) -> bool:
    if not task.done() or task.cancelled():
        return False
    if task.exception() is not None:  # a measurement that failed for good ends it too
        return True
    result = task.result()
    return result is not None and not spec.dry_run and result.phase != "successful"
