"""The judge: one pure function from a configuration and data to a judgement."""

from __future__ import annotations

from core.judge import wording
from core.judge.config import JudgeMetric
from core.judge.data import ErrorData, JudgeRequest, MetricData
from core.judge.error_judge import judge_errors
from core.judge.result import JudgeResult, MetricJudgement, judgement
from core.judge.sample_judge import judge_samples
from core.judge.scoring import score, verdict_of


def _sizes(data: MetricData) -> tuple[int, int]:
    if isinstance(data, ErrorData):
        return data.baseline.requests, data.canary.requests
    return len(data.baseline), len(data.canary)


def _nodata(metric: JudgeMetric, sizes: tuple[int, int] | None) -> MetricJudgement:
    if sizes is None:
        reason = f"{metric.name}: no data, none was measured"
        sizes = (0, 0)
    else:
        reason = (
            f"{metric.name}: no data, {wording.count(sizes[1])} vs {wording.count(sizes[0])}"
            f" {wording.units(metric.kind)} (canary vs baseline), fewer than the"
            f" {wording.count(metric.min_samples)} needed on each side"
        )
    if metric.nodata == "fail":
        reason += "; fails: this metric must have data"
    return judgement(metric, "nodata", sizes, reason)


def judge_metric(metric: JudgeMetric, request: JudgeRequest) -> MetricJudgement:
    """One metric's verdict: no data, or the test of its kind."""
    data = request.data.get(metric.name)
    if data is None:
        return _nodata(metric, None)
    sizes = _sizes(data)
    if min(sizes) < metric.min_samples:
        return _nodata(metric, sizes)
    if isinstance(data, ErrorData):
        return judge_errors(metric, data, request.baseline_label, request.canary_label)
    return judge_samples(metric, data, request.baseline_label, request.canary_label)


def judge(request: JudgeRequest) -> JudgeResult:
    """Compare the canary with the baseline on every metric; score and decide.

    Pure and deterministic: the same request always gives the same result.
    """
    judged = [judge_metric(m, request) for m in request.config.metrics]
    value, why = score(request.config, judged)
    verdict = verdict_of(value, request.config.thresholds)
    reason = f"{verdict} at score {value:g} ({why})"
    return JudgeResult(score=value, verdict=verdict, metrics=judged, reason=reason)
