"""A judge's series metric, read from Prometheus: one range query per side, over its window.

The metric's PromQL is filled in once per side ({{version}} with that side's version) and
evaluated over that side's window, so a `concurrent` baseline and the canary are sampled at
the same instants, and a `before` or `pinned` baseline over its own earlier window.

The step is the window divided by MAX_SAMPLES, rounded up to a whole second, and never under
one second: a window of up to MAX_SAMPLES seconds is sampled every second (finer than any
usual scrape interval, so no sample is missed); a longer one is spread evenly over at most
MAX_SAMPLES points (the judge's bound per side) instead of being cut short. Whole seconds,
because Prometheus lays out a range's points in milliseconds and a fractional step would be
rounded there, moving the points. Points are evaluated at since, since + step, ... strictly
before `until` (the window is half-open), so a `before` baseline and the canary that follows
it never share an instant.

Note for whoever reads the verdicts: with a step finer than the scrape interval, consecutive
points repeat the same sample (and a `rate()` over a range overlaps its neighbours); the
judge's test then sees more points than independent observations. `min_samples` and the
tolerance are the guard against reading significance into that alone.
"""

from __future__ import annotations

import math

from activities.analysis.prometheus import (
    PrometheusClient,
    PrometheusError,
    QueryTemplateError,
    render_query,
)
from core.judge.config import JudgeMetric
from core.judge.data import MAX_SAMPLES, SeriesData
from core.judge.recording import Window

MIN_STEP = 1
# SeriesData's bound on each value (core/judge/data.py SeriesValue).
MAX_MAGNITUDE = 1e15


class SeriesError(Exception):
    """A series metric could not be read; the message says why, in words a user can act on."""


def step_for(window: Window) -> float:
    """Seconds between two points of `window`'s range: whole seconds, at least MIN_STEP,
    and coarse enough that the window never yields more than MAX_SAMPLES points."""
    span = max(window.until - window.since, 0.0)
    return float(max(MIN_STEP, math.ceil(span / MAX_SAMPLES)))


def range_of(window: Window) -> tuple[float, float, float] | None:
    """(start, end, step) of the range query over `window`, or None when it has no instant.

    Prometheus counts a range's points in whole milliseconds, so the range is laid out in
    them too: `start` is the first millisecond of the window, `end` the last point before
    `until`, and Prometheus evaluates exactly the points since + k * step < until, at most
    MAX_SAMPLES of them.
    """
    step_ms = int(step_for(window)) * 1000
    since_ms = math.ceil(window.since * 1000)
    span_ms = math.ceil(window.until * 1000) - since_ms
    if span_ms <= 0:
        return None
    points = min(-(-span_ms // step_ms), MAX_SAMPLES)
    return since_ms / 1000, (since_ms + (points - 1) * step_ms) / 1000, step_ms / 1000


def _check(metric: str, side: str, values: list[float]) -> list[float]:
    if len(values) > MAX_SAMPLES:
        raise SeriesError(
            f"series metric {metric}: the {side} has {len(values)} points, more than the"
            f" {MAX_SAMPLES} a judge compares"
        )
    beyond = next((v for v in values if abs(v) > MAX_MAGNITUDE), None)
    if beyond is not None:
        raise SeriesError(
            f"series metric {metric}: the {side}'s query returns {beyond:g}, beyond the"
            f" ±{MAX_MAGNITUDE:g} a series metric accepts; scale the query (e.g. divide"
            " bytes into GiB)"
        )
    return values


async def _side(
    prometheus: PrometheusClient,
    metric: str,
    query: str,
    side: str,
    window: Window,
    **placeholders: str,
) -> list[float]:
    if window.until < window.since:
        raise SeriesError(
            f"series metric {metric}: the {side}'s window ends ({window.until:g}) before"
            f" it starts ({window.since:g})"
        )
    try:
        promql = render_query(query, **placeholders)
    except QueryTemplateError as err:
        raise SeriesError(f"series metric {metric}, {side}: {err}") from err
    asked = range_of(window)
    if asked is None:
        return []
    start, end, step = asked
    try:
        values = await prometheus.query_range(promql, start, end, step)
    except PrometheusError as err:
        raise SeriesError(f"series metric {metric}, {side}: {err}") from err
    return _check(metric, side, values)


async def series_pair(
    prometheus: PrometheusClient,
    metric: JudgeMetric,
    *,
    component: str,
    environment: str,
    canary_version: str,
    canary_window: Window,
    baseline_version: str,
    baseline_window: Window,
) -> SeriesData:
    """Both sides' values of a series metric, each over its own window.

    A side with no series in its window has no values (the judge says no data); every
    failure (no query, an unsafe placeholder value, Prometheus's refusal or absence, a value
    out of bounds) is a `SeriesError` naming the metric and the side. The sides are asked one
    after the other: two small requests, and the first failure is the one reported.
    """
    if metric.kind != "series":
        raise SeriesError(f"metric {metric.name} is a {metric.kind} metric, not a series one")
    if metric.query is None:
        raise SeriesError(
            f"metric {metric.name} has no `query`: a series metric names the PromQL it is read from"
        )
    name, query = metric.name, metric.query
    fixed = {"component": component, "environment": environment}
    baseline = await _side(
        prometheus, name, query, "baseline", baseline_window, version=baseline_version, **fixed
    )
    canary = await _side(
        prometheus, name, query, "canary", canary_window, version=canary_version, **fixed
    )
    return SeriesData(baseline=baseline, canary=canary)
