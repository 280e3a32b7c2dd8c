"""What a judge is given: per metric, the baseline's and the canary's data, bounded.

Latency and series metrics carry samples (at most MAX_SAMPLES per side: the router keeps a
bounded reservoir per version, and a longer PromQL range is downsampled before judging); error
metrics carry counts. Every number is finite; latencies are not negative.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.judge.config import JudgeConfig
from core.models.names import VersionLabel

MAX_SAMPLES = 10_000
# A request count beyond any window the router can see (about 30,000 requests per second for
# an hour): bounds the exact test's arithmetic.
MAX_REQUESTS = 100_000_000
# Latencies in seconds: a request that took longer than an hour is a measuring error.
MAX_LATENCY_SECONDS = 3600.0

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

Latency = Annotated[float, Field(ge=0, le=MAX_LATENCY_SECONDS)]
SeriesValue = Annotated[float, Field(ge=-1e15, le=1e15)]


class ErrorCounts(BaseModel):
    """Requests of one version in the window, and how many of them failed."""

    model_config = _STRICT

    requests: int = Field(..., ge=0, le=MAX_REQUESTS)
    errors: int = Field(..., ge=0, le=MAX_REQUESTS)

    @model_validator(mode="after")
    def _errors_within_requests(self) -> ErrorCounts:
        if self.errors > self.requests:
            raise ValueError(
                f"{self.errors} errors out of {self.requests} requests: errors are counted"
                " among the requests"
            )
        return self


class LatencyData(BaseModel):
    """Per-request latencies, in seconds, of each version in the same window."""

    model_config = _STRICT

    kind: Literal["latency"] = "latency"
    baseline: list[Latency] = Field(..., max_length=MAX_SAMPLES)
    canary: list[Latency] = Field(..., max_length=MAX_SAMPLES)


class SeriesData(BaseModel):
    """A numeric series of each version (e.g. a PromQL range), in any unit."""

    model_config = _STRICT

    kind: Literal["series"] = "series"
    baseline: list[SeriesValue] = Field(..., max_length=MAX_SAMPLES)
    canary: list[SeriesValue] = Field(..., max_length=MAX_SAMPLES)


class ErrorData(BaseModel):
    """Requests and errors of each version in the same window."""

    model_config = _STRICT

    kind: Literal["errors"] = "errors"
    baseline: ErrorCounts
    canary: ErrorCounts


MetricData = Annotated[LatencyData | SeriesData | ErrorData, Field(discriminator="kind")]


class JudgeRequest(BaseModel):
    """A configuration and the data to judge by it. A metric with no data is judged no data."""

    model_config = _STRICT

    config: JudgeConfig
    data: dict[str, MetricData] = Field(default_factory=dict, max_length=20)
    baseline_label: VersionLabel = Field("baseline", description="the baseline's name in words")
    canary_label: VersionLabel = Field("canary", description="the canary's name in words")

    @model_validator(mode="after")
    def _data_matches_the_metrics(self) -> JudgeRequest:
        kinds = {m.name: m.kind for m in self.config.metrics}
        for name, data in self.data.items():
            if name not in kinds:
                raise ValueError(
                    f"data for {name!r}, which is not a metric of the configuration"
                    f" ({', '.join(kinds)})"
                )
            if data.kind != kinds[name]:
                raise ValueError(
                    f"metric {name!r} is of kind {kinds[name]!r} but its data is {data.kind!r}"
                )
        return self
