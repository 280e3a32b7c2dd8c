"""What a judgement was made from, kept so it can be judged again (replay) or serve as the
next deployment's pinned baseline.

The data is kept per source, not per judge metric: the router's latency samples and error
counts of both sides, and each series metric's values. Any judge configuration can then be
judged against it: every latency metric reads the latency samples, every errors metric the
counts, a series metric the series recorded under its name (no data if none was).
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.judge.config import JudgeConfig
from core.judge.data import ErrorData, JudgeRequest, LatencyData, MetricData, SeriesData
from core.judge.result import JudgeResult
from core.judge.spec import ResolvedBaseline
from core.models.names import ComponentName, EnvironmentName, VersionLabel

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class Window(BaseModel):
    """[since, until) in seconds since the epoch, the router's clock."""

    model_config = _STRICT

    since: float
    until: float


class Recording(BaseModel):
    """Both sides' data of one judgement, with where each came from."""

    model_config = _STRICT

    baseline_label: VersionLabel
    canary_label: VersionLabel
    baseline: ResolvedBaseline
    baseline_window: Window = Field(..., description="where the baseline's data comes from")
    canary_window: Window
    pinned_from: str | None = Field(
        None, description="pinned: the deployment whose passing judgement is the baseline"
    )
    latency: LatencyData | None = None
    errors: ErrorData | None = None
    series: dict[str, SeriesData] = Field(default_factory=dict, max_length=20)


def data_for(config: JudgeConfig, recording: Recording) -> dict[str, MetricData]:
    """Each metric of `config` fed from the recording; a metric with nothing recorded is left
    out (the judge then says no data)."""
    data: dict[str, MetricData] = {}
    for metric in config.metrics:
        found: MetricData | None
        if metric.kind == "latency":
            found = recording.latency
        elif metric.kind == "errors":
            found = recording.errors
        else:
            found = recording.series.get(metric.name)
        if found is not None:
            data[metric.name] = found
    return data


def request_for(config: JudgeConfig, recording: Recording) -> JudgeRequest:
    """The judge's request for `config` over `recording`: its data and its two sides' names."""
    return JudgeRequest(
        config=JudgeConfig.model_validate(
            config.model_dump(include={"metrics", "thresholds"}, by_alias=True)
        ),
        data=data_for(config, recording),
        baseline_label=recording.baseline_label,
        canary_label=recording.canary_label,
    )


class NewJudgement(BaseModel):
    """One judgement to keep: which deployment's which analysis metric made it, its result,
    and the data it was made from. Kept per (deployment, where, metric): a later measurement
    of the same metric covers the earlier one's window and replaces it."""

    model_config = _STRICT

    deployment_id: str = Field(..., min_length=1, max_length=64)
    component: ComponentName
    environment: EnvironmentName
    version: VersionLabel
    metric: str = Field(..., pattern=r"^[a-z][a-z0-9_]{0,62}$", description="analysis metric")
    where: str = Field(..., max_length=200, description="e.g. `at step 3`, as in the status")
    at: AwareDatetime
    result: JudgeResult
    recording: Recording


class StoredJudgement(NewJudgement):
    id: int
