"""Analysis with Argo Rollouts' semantics: named metrics, conditions over `result`, limits."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.models.durations import Duration

# Measured on the router of the target, for the new version, with no configuration.
BUILTIN_METRICS = ("error_rate", "latency_p50_ms", "latency_p99_ms", "request_rate")

MetricPhase = Literal["successful", "failed", "inconclusive", "error"]


class MetricSpec(BaseModel):
    """One metric: how to measure it and when it passes or fails.

    `{"name": "error_rate", "failure_condition": "result > 0.05"}` is a whole metric: the
    built-in router metrics need no query. With `query`, the metric is a PromQL expression
    asked of `PROMETHEUS_URL`; `{{version}}`, `{{component}}` and `{{environment}}` in it are
    filled in.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]{0,62}$")
    query: str | None = Field(None, description="PromQL; absent for the built-in metrics")
    success_condition: str | None = None
    failure_condition: str | None = None
    interval: Duration | None = Field(None, description="time between measurements")
    count: int | None = Field(None, ge=1, le=10_000, description="measurements; default 1")
    initial_delay: Duration = 0
    failure_limit: int = Field(0, ge=-1, description="failed measurements tolerated; -1: any")
    inconclusive_limit: int = Field(0, ge=0)
    consecutive_error_limit: int = Field(4, ge=0)
    dry_run: bool = Field(False, description="measured and shown, never decides")

    @model_validator(mode="after")
    def _measurable(self) -> MetricSpec:
        if self.query is None and self.name not in BUILTIN_METRICS:
            raise ValueError(
                f"metric {self.name!r} needs a `query`, or use a built-in one: "
                f"{', '.join(BUILTIN_METRICS)}"
            )
        return self

    @property
    def measurements(self) -> int:
        return self.count or 1


class AnalysisSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[MetricSpec] = Field(..., min_length=1)


class RouterCounters(BaseModel):
    """The router's cumulative counters of one version at one moment."""

    requests: int = 0
    errors: int = Field(0, description="answers with a 5xx status")
    buckets: list[tuple[float, int]] = Field(
        default_factory=list, description="(upper bound in s, cumulative count)"
    )


class MeasureRequest(BaseModel):
    component: str
    environment: str
    version: str
    metric: MetricSpec
    since: RouterCounters | None = Field(
        None,
        description="counters of the previous measurement: a built-in metric covers the window"
        " since then",
    )


class MetricValue(BaseModel):
    """What the measuring activity returns; conditions are judged by the workflow."""

    value: float | None = None
    error: str | None = Field(None, description="why no value could be had (provider failure)")
    counters: RouterCounters | None = None


class Measurement(BaseModel):
    """One judged measurement, as shown in the deployment's status."""

    metric: str
    index: int
    value: float | None
    phase: MetricPhase
    at: datetime
    message: str


class MetricResult(BaseModel):
    metric: str
    phase: MetricPhase
    measurements: list[Measurement]
    reason: str


class AnalysisResult(BaseModel):
    phase: MetricPhase
    metrics: list[MetricResult]
    reason: str
