"""Analysis with Argo Rollouts' semantics: named metrics, conditions over `result`, limits."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.conditions import validate as validate_condition
from core.judge.result import JudgeResult
from core.judge.spec import JudgeSpec, ResolvedBaseline
from core.models.durations import Duration
from core.models.names import ComponentName, EnvironmentName, VersionLabel

# Measured on the router of the target, for the new version, with no configuration.
BUILTIN_METRICS = (
    "error_rate",
    "latency_p50_ms",
    "latency_p99_ms",
    "request_rate",
    "slo_burn_rate",
)
# Built-in metrics that judge requests, so too few requests are no evidence (`min_requests`).
REQUEST_METRICS = ("error_rate", "latency_p50_ms", "latency_p99_ms", "slo_burn_rate")
# The built-in metric judged against the component's declared SLO (core/models/slo.py).
SLO_BURN_RATE = "slo_burn_rate"

MetricPhase = Literal["successful", "failed", "inconclusive", "error"]
# A measurement may also find no data: too few requests to judge. It counts toward nothing.
MeasurementPhase = Literal["successful", "failed", "inconclusive", "error", "no_data"]

# Re-measurements while data is missing, at most, per metric: each waits `interval` (1 s
# without one), and all of them together at most `no_data_bound` (MetricSpec).
NO_DATA_RETRIES = 30
MIN_NO_DATA_SECONDS = 30.0
# Measurements (with their no-data retries) that the analyses run inside one deployment's
# history may take in all: each costs about 11 history events, and Temporal terminates a
# workflow at 51,200. A background analysis runs in a child workflow that continues as new,
# so it is not counted.
MAX_INLINE_MEASUREMENTS = 2000

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class MetricSpec(BaseModel):
    """One metric: how to measure it and when it passes or fails.

    `{"name": "error_rate", "failure_condition": "result > 0.05"}` is a whole metric: the
    built-in router metrics need no query. With `query`, the metric is a PromQL expression
    asked of `PROMETHEUS_URL`; `{{version}}`, `{{component}}` and `{{environment}}` in it are
    filled in. With `judge`, it is a statistical judge of the new version against a baseline
    (docs/judge.md): its value is the judgement's score (0-100), and its verdict decides
    through `judge.on_verdict`, so it takes no query, condition or SLO.
    """

    model_config = _STRICT

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]{0,62}$")
    query: str | None = Field(
        None, max_length=4000, description="PromQL; absent for the built-in metrics"
    )
    success_condition: str | None = Field(None, max_length=500)
    failure_condition: str | None = Field(None, max_length=500)
    interval: Duration | None = Field(None, description="time between measurements")
    count: int | None = Field(None, ge=1, le=10_000, description="measurements; default 1")
    initial_delay: Duration = 0
    failure_limit: int = Field(
        0, ge=-1, le=10_000, description="failed measurements tolerated; -1: any"
    )
    inconclusive_limit: int = Field(0, ge=0, le=10_000)
    consecutive_error_limit: int = Field(4, ge=0, le=10_000)
    min_requests: int = Field(
        10,
        ge=0,
        le=1_000_000,
        description="error_rate, latencies and slo_burn_rate: fewer requests to the new version"
        " in the window are no data, measured again after `interval` (1 s without one)",
    )
    dry_run: bool = Field(False, description="measured and shown, never decides")
    slo: Literal["availability", "latency"] | None = Field(
        None,
        description="slo_burn_rate only: which of the component's SLOs the new version's bad"
        " share is compared with (default availability); the value is that share over"
        " (1 - objective), so 1 burns the budget exactly in one window",
    )
    judge: JudgeSpec | None = Field(
        None,
        description="a judge metric: the new version compared with a baseline (pass / warning"
        " / fail); its value is the score, 0-100",
    )

    @field_validator("success_condition", "failure_condition")
    @classmethod
    def _condition(cls, text: str | None) -> str | None:
        # Checked here, so every way a spec is made (a deployment, a retry, a rollback with a
        # strategy, the orchestration API) refuses a bad condition with its field's path.
        if text is not None:
            validate_condition(text)
        return text

    @model_validator(mode="after")
    def _measurable(self) -> MetricSpec:
        if self.judge is not None:
            for field in ("query", "success_condition", "failure_condition", "slo"):
                if getattr(self, field) is not None:
                    raise ValueError(
                        f"judge metric {self.name!r} takes no `{field}`: the judge compares the"
                        " new version with its baseline, and `judge.on_verdict` says what its"
                        " verdict does"
                    )
            return self
        if self.query is None and self.name not in BUILTIN_METRICS:
            raise ValueError(
                f"metric {self.name!r} needs a `query`, or use a built-in one: "
                f"{', '.join(BUILTIN_METRICS)}"
            )
        if self.slo is not None and (self.name != SLO_BURN_RATE or self.query is not None):
            raise ValueError(
                f"`slo` belongs to the built-in metric {SLO_BURN_RATE!r} (with no query); "
                f"remove it from {self.name!r}"
            )
        return self

    @property
    def slo_name(self) -> Literal["availability", "latency"] | None:
        """The SLO a `slo_burn_rate` metric judges by; None for any other metric."""
        if self.query is not None or self.judge is not None or self.name != SLO_BURN_RATE:
            return None
        return self.slo or "availability"

    @property
    def measurements(self) -> int:
        return self.count or 1

    @property
    def no_data_bound(self) -> float:
        """How long data may be missing, in all, before a measurement is inconclusive."""
        return max(MIN_NO_DATA_SECONDS, self.measurements * (self.interval or 1.0))

    @property
    def judges_requests(self) -> bool:
        return self.query is None and self.judge is None and self.name in REQUEST_METRICS


class AnalysisSpec(BaseModel):
    """Metrics measured together; the worst deciding phase wins."""

    model_config = _STRICT
    inline: ClassVar[bool] = True  # runs inside the deployment's own history

    metrics: list[MetricSpec] = Field(..., min_length=1, max_length=20)

    @model_validator(mode="after")
    def _names_unique_and_within_budget(self) -> AnalysisSpec:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metric names must be unique within an analysis")
        if self.inline and self.budget > MAX_INLINE_MEASUREMENTS:
            raise ValueError(_over_budget(self.budget))
        return self

    @property
    def budget(self) -> int:
        """The most measurements this analysis can take, no-data retries included."""
        return sum(m.measurements + NO_DATA_RETRIES for m in self.metrics)


def _over_budget(total: int) -> str:
    return (
        f"the analyses of this deployment may take {total} measurements (counts plus "
        f"{NO_DATA_RETRIES} no-data retries per metric); at most {MAX_INLINE_MEASUREMENTS}. "
        "Use fewer or rarer measurements, or a background analysis"
    )


def check_inline_budget(specs: list[AnalysisSpec]) -> None:
    """Refuse a deployment whose inline analyses together could overflow its history."""
    total = sum(s.budget for s in specs)
    if total > MAX_INLINE_MEASUREMENTS:
        raise ValueError(_over_budget(total))


class RouterCounters(BaseModel):
    """The router's cumulative counters of one version at one moment."""

    requests: int = 0
    errors: int = Field(0, description="answers with a 5xx status")
    buckets: list[tuple[float, int]] = Field(
        default_factory=list, description="(upper bound in s, cumulative count)"
    )


class MeasureRequest(BaseModel):
    component: ComponentName
    environment: EnvironmentName
    version: VersionLabel
    metric: MetricSpec
    since: RouterCounters | None = Field(
        None,
        description="counters of the previous measurement: a built-in metric covers the window"
        " since then",
    )
    baseline: bool = Field(
        False, description="only read the counters, the start of the analysis' window"
    )


class JudgeWindowRequest(BaseModel):
    """What the judging activity (`judge-window`) needs for one judgement of a judge metric.

    Times are seconds since the epoch. The canary is `version` over [window_start, now); the
    baseline is `baseline_version` over the same window (`concurrent`), over the
    `judge.baseline_window` seconds before `deployment_start` (`before`), or the last
    passing judgement of the target kept by another deployment (`pinned`).
    """

    model_config = _STRICT

    component: ComponentName
    environment: EnvironmentName
    version: VersionLabel
    baseline_version: VersionLabel
    baseline: ResolvedBaseline
    window_start: float = Field(..., ge=0)
    deployment_start: float = Field(..., ge=0)
    deployment_id: str = Field(..., min_length=1, max_length=64)
    metric: str = Field(..., pattern=r"^[a-z][a-z0-9_]{0,62}$")
    where: str = Field(..., max_length=200)
    judge: JudgeSpec


class JudgeContext(BaseModel):
    """What a judge metric needs to know of its deployment, beyond the target: carried into a
    background analysis (and its continue-as-new), where `workflow.info()` is the child's."""

    model_config = _STRICT

    deployment_id: str = Field(..., min_length=1, max_length=64)
    strategy: Literal["canary", "blue_green", "rolling"]
    baseline_version: VersionLabel | None = Field(
        None, description="the version the deployment replaces; None: nothing to compare with"
    )
    deployment_start: float = Field(..., ge=0, description="seconds since the epoch")


class MetricValue(BaseModel):
    """What the measuring activity returns; conditions are judged by the workflow."""

    value: float | None = None
    error: str | None = Field(None, description="why no value could be had (provider failure)")
    counters: RouterCounters | None = None
    requests: int | None = Field(
        None, description="built-in metrics: requests of the version in the window"
    )
    judgement: JudgeResult | None = Field(
        None, description="judge metrics: the judgement (never its samples); value is its score"
    )


class Measurement(BaseModel):
    """One judged measurement, as shown in the deployment's status."""

    metric: str
    index: int
    value: float | None
    phase: MeasurementPhase
    at: datetime
    message: str
    judgement: JudgeResult | None = Field(
        None,
        description="judge metrics: each compared metric's samples, test, p-value, effect size"
        " and verdict, in numbers and in words",
    )


class MetricResult(BaseModel):
    metric: str
    phase: MetricPhase
    measurements: list[Measurement]
    reason: str


class AnalysisResult(BaseModel):
    phase: MetricPhase
    metrics: list[MetricResult]
    reason: str


# How many measurements the status keeps: the newest, per deployment and per metric result.
STATUS_MEASUREMENTS = 50
RESULT_MEASUREMENTS = 10


class MetricProgress(BaseModel):
    """Where one metric's measuring stands: carried across a continue-as-new."""

    judged: int = Field(0, description="measurements that count toward `count`")
    counts: dict[str, int] = Field(default_factory=dict, description="judged, by phase")
    consecutive_errors: int = 0
    since: RouterCounters | None = Field(None, description="counters at the window's start")
    baseline_read: bool = False
    delayed: bool = Field(False, description="the initial delay has passed")
    no_data_seconds: float = Field(0.0, description="waited for data so far, in all")
    no_data_retries: int = 0
    next_wait: float = Field(0.0, description="seconds to wait before the next measurement")
    window_start: float | None = Field(
        None, description="judge metrics: when measuring began (epoch seconds), the window's start"
    )
    recent: list[Measurement] = Field(default_factory=list)


class UnboundedAnalysisSpec(AnalysisSpec):
    """An analysis run by a child workflow that continues as new: no history budget."""

    inline: ClassVar[bool] = False


class BackgroundAnalysisInput(BaseModel):
    """The input of the background-analysis child workflow (and of each continue-as-new)."""

    spec: UnboundedAnalysisSpec
    component: ComponentName
    environment: EnvironmentName
    version: VersionLabel
    where: str
    until_cancelled: list[str] = Field(
        default_factory=list, description="metrics that measure until the rollout ends"
    )
    progress: dict[str, MetricProgress] = Field(default_factory=dict)
    judging: JudgeContext | None = Field(
        None, description="the deployment, for judge metrics; None when the analysis has none"
    )
    runs: int = Field(1, description="this run's number; each continue-as-new adds one")
