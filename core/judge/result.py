"""What a judge decides: per metric a verdict with its evidence, a score, and a verdict."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from core.judge.config import JudgeMetric, MetricKind

MetricVerdict = Literal["pass", "fail", "nodata"]
Deviation = Literal["high", "low"]
Verdict = Literal["pass", "warning", "fail"]


class Shift(BaseModel):
    """How far the canary's values sit from the baseline's (Hodges–Lehmann)."""

    baseline_median: float
    canary_median: float
    shift: float = Field(..., description="canary minus baseline, in the metric's unit")
    relative: float | None = Field(
        None, description="shift over the baseline's median; None when that median is 0"
    )
    low: float = Field(..., description="lower end of the shift's confidence interval")
    high: float = Field(..., description="upper end of the shift's confidence interval")


class TailCheck(BaseModel):
    """Whether the canary's tail (a high quantile, or low for `decrease`) grew."""

    quantile: float
    baseline_value: float = Field(..., description="the baseline's own quantile")
    canary_value: float = Field(..., description="the canary's own quantile")
    relative: float | None = Field(None, description="canary's quantile over baseline's, minus 1")
    threshold: float = Field(..., description="the pooled quantile both sides are counted at")
    baseline_beyond: int = Field(..., description="baseline samples beyond the threshold")
    canary_beyond: int = Field(..., description="canary samples beyond the threshold")
    p_value: float
    failed: bool


class Rates(BaseModel):
    """Error rates of both sides and their difference."""

    baseline_rate: float
    canary_rate: float
    difference: float = Field(..., description="canary's rate minus baseline's")
    baseline_errors: int
    canary_errors: int


class MetricJudgement(BaseModel):
    """One metric's verdict and the evidence for it, in numbers and in words."""

    metric: str
    kind: MetricKind
    verdict: MetricVerdict
    deviation: Deviation | None = Field(None, description="which way a failed metric moved")
    critical: bool
    weight: float
    baseline_samples: int = Field(..., description="samples, or requests for errors")
    canary_samples: int
    test: str | None = Field(None, description="the test that decided, None for no data")
    p_value: float | None = None
    shift: Shift | None = None
    tail: TailCheck | None = None
    rates: Rates | None = None
    reason: str


def judgement(
    metric: JudgeMetric,
    verdict: MetricVerdict,
    sizes: tuple[int, int],
    reason: str,
    **evidence: object,
) -> MetricJudgement:
    """`metric`'s judgement: what the configuration says of it (name, kind, critical, weight)
    with the verdict, the (baseline, canary) sizes, the words and the test's evidence."""
    return MetricJudgement.model_validate(
        {
            "metric": metric.name,
            "kind": metric.kind,
            "verdict": verdict,
            "critical": metric.critical,
            "weight": metric.weight,
            "baseline_samples": sizes[0],
            "canary_samples": sizes[1],
            "reason": reason,
            **evidence,
        }
    )


class JudgeResult(BaseModel):
    """The judgement: a score from 0 to 100, a verdict from the thresholds, and why."""

    score: float = Field(..., ge=0, le=100)
    verdict: Verdict
    metrics: list[MetricJudgement]
    reason: str
