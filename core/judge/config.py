"""What a judge compares and how strictly: metrics, tolerances, confidences, thresholds.

The bounds are part of the model: every way a configuration arrives (an analysis, a replay)
is refused with its field's path before a test runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MetricKind = Literal["latency", "errors", "series"]
Direction = Literal["increase", "decrease", "either"]
# `count`: no data is its own verdict, left out of the score, and counts toward the rule that
# a judgement where half the metrics have no data fails (Kayenta's). `fail`: no data is a
# failure of the metric. `ignore`: left out of the score and of the half rule.
NoDataPolicy = Literal["count", "fail", "ignore"]
# The alternative hypothesis of a test of the canary against the baseline, per direction.
Alternative = Literal["greater", "less", "two-sided"]
ALTERNATIVE: dict[Direction, Alternative] = {
    "increase": "greater",
    "decrease": "less",
    "either": "two-sided",
}

# Tolerances when a metric names none. Latency and series: relative to the baseline's median
# (0.1 = the canary may be 10% slower). Errors: absolute, on the error rate (0.001 = 0.1
# percentage point more), because a relative tolerance means nothing against a zero baseline.
DEFAULT_TOLERANCE: dict[MetricKind, float] = {"latency": 0.1, "series": 0.1, "errors": 0.001}
DEFAULT_TAIL_QUANTILE = 0.95
# Each metric may raise a false alarm with probability 1 - confidence, and one failing metric
# of two already fails a judgement: at 0.99, a judgement of two metrics (latency and errors)
# fails identical versions at most about 2% of the time, the 49 of 50 runs issue 16 asks for.
DEFAULT_CONFIDENCE = 0.99
MAX_METRICS = 20

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class JudgeMetric(BaseModel):
    """One metric compared between the baseline and the canary.

    `{"name": "latency", "kind": "latency"}` is a whole metric: slower by more than 10%,
    significantly at 99%, fails it.
    """

    model_config = _STRICT

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]{0,62}$")
    kind: MetricKind
    direction: Direction = Field(
        "increase", description="which change is bad: a higher, a lower, or either value"
    )
    tolerance: float | None = Field(
        None,
        ge=0,
        le=100,
        description="effect tolerated. latency, series: relative to the baseline's median"
        " (0.1 = 10%); errors: absolute on the rate (0.001 = 0.1 percentage point)."
        " Default 0.1 (latency, series), 0.001 (errors)",
    )
    confidence: float = Field(
        DEFAULT_CONFIDENCE,
        ge=0.5,
        le=0.9999,
        description="1 - the false-alarm rate allowed per metric (default 0.99)",
    )
    critical: bool = Field(False, description="failing it fails the whole judgement")
    weight: float = Field(1.0, gt=0, le=1000, description="share of the score")
    min_samples: int = Field(
        10,
        ge=1,
        le=10_000,
        description="fewer samples (latency, series) or requests (errors) on either side is"
        " no data",
    )
    nodata: NoDataPolicy = "count"
    tail_quantile: float | None = Field(
        None,
        ge=0.5,
        le=0.999,
        description="latency only: the high quantile whose growth is checked (default 0.95)",
    )
    query: str | None = Field(
        None,
        max_length=4000,
        description="series only: PromQL asked of PROMETHEUS_URL over each side's window;"
        " `{{version}}`, `{{component}}` and `{{environment}}` are filled in, {{version}} with"
        " the baseline's version for the baseline and the canary's for the canary",
    )

    @model_validator(mode="after")
    def _fits_its_kind(self) -> JudgeMetric:
        if self.kind == "errors" and self.tolerance is not None and self.tolerance > 1:
            raise ValueError(
                "an errors metric's tolerance is an absolute error rate, at most 1"
                " (0.001 = 0.1 percentage point)"
            )
        if self.kind != "latency" and self.tail_quantile is not None:
            raise ValueError("`tail_quantile` belongs to latency metrics")
        if self.kind != "series" and self.query is not None:
            raise ValueError(
                "`query` belongs to series metrics: latency and errors come from the router"
            )
        return self

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    @property
    def allowed(self) -> float:
        """The tolerance in force: the metric's own, or its kind's default."""
        return DEFAULT_TOLERANCE[self.kind] if self.tolerance is None else self.tolerance

    @property
    def quantile(self) -> float:
        return self.tail_quantile or DEFAULT_TAIL_QUANTILE


class Thresholds(BaseModel):
    """Scores at or above `pass` pass; at or above `warning` warn; below fail."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    pass_: float = Field(95.0, alias="pass", ge=0, le=100)
    warning: float = Field(75.0, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.warning > self.pass_:
            raise ValueError("the warning threshold must not be above the pass threshold")
        return self


class JudgeConfig(BaseModel):
    """The metrics a judgement compares, and the score thresholds of its verdict."""

    model_config = _STRICT

    metrics: list[JudgeMetric] = Field(..., min_length=1, max_length=MAX_METRICS)
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @model_validator(mode="after")
    def _names_unique(self) -> JudgeConfig:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metric names must be unique within a judge configuration")
        return self
