"""SLOs of a component on its router's metrics, and the error budget they leave.

A component declares at most one availability and one latency SLO. Availability counts a
request good when the router answered it with anything but a 5xx; latency counts it good when
it was answered within the threshold. The threshold is judged on the router's histogram, so
it is rounded down to the nearest bucket bound (`ROUTER_BUCKETS`), and the view says so.
"""

from __future__ import annotations

import bisect
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from core.models.analysis import RouterCounters
from core.models.durations import parse_duration

# The router's latency buckets in seconds (activities/infrastructure/local/router/metrics.py
# BUCKETS; a unit test keeps the two equal: core does not import the router).
ROUTER_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

MIN_WINDOW_SECONDS = 3600.0
MAX_WINDOW_SECONDS = 90 * 86400.0
# "Five nines" at most: beyond that a budget is a handful of requests a month and the
# router's counters, sampled every health round, cannot tell it from noise.
MAX_OBJECTIVE = 0.99999
# The burn rate shown beside the budget covers the last hour, as the fast alert window does.
BURN_RATE_WINDOW_SECONDS = 3600.0

SloName = Literal["availability", "latency"]

Window = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(
        ge=MIN_WINDOW_SECONDS,
        le=MAX_WINDOW_SECONDS,
        allow_inf_nan=False,
        description="the rolling window the budget covers: 1h to 90d (e.g. 30d)",
    ),
]
Threshold = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(
        ge=0.001,
        le=60.0,
        allow_inf_nan=False,
        description="a request answered within this is good: 1ms to 60s (e.g. 300ms)",
    ),
]


def _five_nines(objective: float) -> float:
    if objective > MAX_OBJECTIVE:
        raise ValueError(f"objective {objective} has more than five nines; at most {MAX_OBJECTIVE}")
    return objective


Objective = Annotated[
    float,
    Field(
        gt=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="the share of good requests promised, e.g. 0.999; at most 0.99999",
    ),
    AfterValidator(_five_nines),
]

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class AvailabilitySlo(BaseModel):
    """Good: requests the router answered without a 5xx."""

    model_config = _STRICT

    objective: Objective
    window: Window = 30 * 86400.0


class LatencySlo(BaseModel):
    """Good: requests answered within `threshold` (rounded down to a router bucket)."""

    model_config = _STRICT

    objective: Objective
    threshold: Threshold
    window: Window = 30 * 86400.0

    @property
    def bucket(self) -> float:
        """The router bucket the threshold is judged at: the largest bound at or below it."""
        return bucket_at_or_below(self.threshold)


class SloSpec(BaseModel):
    """What a component promises: `{"availability": {...}, "latency": {...}}`, either or both."""

    model_config = _STRICT

    availability: AvailabilitySlo | None = None
    latency: LatencySlo | None = None

    def declared(self) -> list[SloName]:
        names: list[SloName] = []
        if self.availability is not None:
            names.append("availability")
        if self.latency is not None:
            names.append("latency")
        return names

    def objective(self, name: SloName) -> float | None:
        slo = self.availability if name == "availability" else self.latency
        return None if slo is None else slo.objective

    @property
    def shortest_window(self) -> float:
        windows = [s.window for s in (self.availability, self.latency) if s is not None]
        return min(windows, default=0.0)

    @property
    def longest_window(self) -> float:
        windows = [s.window for s in (self.availability, self.latency) if s is not None]
        return max(windows, default=0.0)


def bucket_at_or_below(seconds: float) -> float:
    """The largest router bucket bound not above `seconds` (the smallest if all are)."""
    i = bisect.bisect_right(ROUTER_BUCKETS, seconds + 1e-12)
    return ROUTER_BUCKETS[max(i - 1, 0)]


def error_budget_remaining(bad: int, total: int, objective: float) -> float | None:
    """1 - (bad / total) / (1 - objective): 1 untouched, 0 spent, below 0 overspent; None
    without traffic (no request is no evidence)."""
    rate = burn_rate(bad, total, objective)
    return None if rate is None else 1.0 - rate


def burn_rate(bad: int, total: int, objective: float) -> float | None:
    """How fast the budget burns: the bad share over the share the objective allows (1 spends
    it exactly in one window); None without traffic."""
    if total <= 0:
        return None
    return (bad / total) / (1.0 - objective)


class SloStatus(BaseModel):
    """One SLO of a component in one environment, as the store's samples show it."""

    slo: SloName
    environment: str
    objective: float
    window_seconds: float
    threshold_seconds: float | None = Field(
        None, description="latency: the router bucket the threshold is judged at"
    )
    note: str | None = Field(None, description="why the threshold judged differs from the one set")
    good: int
    total: int
    error_budget_remaining: float | None = Field(
        description="1 untouched, 0 spent, negative overspent; null without traffic"
    )
    burn_rate_1h: float | None = Field(
        None, description="bad share of the last hour over (1 - objective); null if unknown"
    )


# --------------------------------------------------------------------------- readings


class Increase(BaseModel):
    """What a target's router answered between two readings, all versions together."""

    requests: int = 0
    errors: int = 0
    latency_good: int = Field(0, description="answered within the latency bucket judged")


def _went_down(after: RouterCounters, before: RouterCounters) -> bool:
    if after.requests < before.requests or after.errors < before.errors:
        return True
    now = dict(after.buckets)
    return any(now.get(le, 0) < n for le, n in before.buckets)


def _within(counters: RouterCounters, bucket: float | None) -> int:
    if bucket is None:
        return 0
    return next((n for le, n in counters.buckets if abs(le - bucket) < 1e-9), 0)


def increase(
    before: dict[str, RouterCounters] | None,
    after: dict[str, RouterCounters],
    bucket: float | None,
) -> Increase:
    """The requests between two readings of a router's per-version cumulative counters, as
    Prometheus's increase() sums them: a version whose counters went down restarted with the
    router, so all of its new counts are new; a version not seen before counts in full; one
    that vanished adds nothing. No earlier reading: nothing is known to be new (the counts
    may be from before the window), so the increase is zero."""
    if before is None:
        return Increase()
    total = Increase()
    for version, now in after.items():
        then = before.get(version)
        if then is None or _went_down(now, then):
            requests, errors, good = now.requests, now.errors, _within(now, bucket)
        else:
            requests = now.requests - then.requests
            errors = now.errors - then.errors
            good = _within(now, bucket) - _within(then, bucket)
        total.requests += requests
        total.errors += errors
        total.latency_good += good
    return total


def bucket_microseconds(seconds: float) -> int:
    """A router bucket as the store keeps it: whole microseconds, exact on every backend."""
    return round(seconds * 1_000_000)
