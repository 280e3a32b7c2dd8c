"""The built-in metrics, computed from the router's Prometheus text (`/_r2c/metrics`).

Pure functions: `parse` turns the text into cumulative counters per version, `window` takes
the difference between two readings, and `builtin_value` turns a window into the value a
condition judges. A window with no request has no value (`None`): no traffic is no evidence,
and the workflow judges that measurement inconclusive rather than passing it.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from core.models.analysis import RouterCounters

REQUESTS = "r2c_router_requests_total"
BUCKET = "r2c_router_request_duration_seconds_bucket"
COUNT = "r2c_router_request_duration_seconds_count"
_OURS = (REQUESTS, BUCKET, COUNT)

# name{labels} value [timestamp]; the label block may hold escaped quotes, hence the pattern.
_SAMPLE = re.compile(
    r'^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>(?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?'
    r"\s+(?P<value>\S+)"
)
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass
class _Version:
    """What the text says about one version, before it becomes `RouterCounters`."""

    requests: float = 0.0
    errors: float = 0.0
    seen_requests: bool = False
    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0


def _labels(block: str | None) -> dict[str, str]:
    if not block:
        return {}
    return {
        name: re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], value)
        for name, value in _LABEL.findall(block)
    }


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample line; comments and blank lines are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"not a Prometheus sample line: {line[:200]!r}")
        out.append((match["name"], _labels(match["labels"]), float(match["value"])))
    return out


def _add(stats: _Version, name: str, labels: dict[str, str], value: float) -> None:
    if name == REQUESTS:
        stats.seen_requests = True
        stats.requests += value
        if labels.get("code", "").startswith("5"):
            stats.errors += value
    elif name == BUCKET and labels.get("le") not in (None, "+Inf"):
        stats.buckets[float(labels["le"])] = value
    elif name == COUNT:
        stats.count = value


def _counters(stats: _Version) -> RouterCounters:
    # Both series count the same requests in the router; `_count` stands in when a reading
    # holds only the histogram.
    requests = stats.requests if stats.seen_requests else stats.count
    return RouterCounters(
        requests=round(requests),
        errors=round(stats.errors),
        buckets=[(le, round(n)) for le, n in sorted(stats.buckets.items())],
    )


def parse(text: str) -> dict[str, RouterCounters]:
    """The cumulative counters of every version the router has seen traffic for."""
    versions: dict[str, _Version] = defaultdict(_Version)
    for name, labels, value in _samples(text):
        if name in _OURS and "version" in labels:
            _add(versions[labels["version"]], name, labels, value)
    return {version: _counters(stats) for version, stats in sorted(versions.items())}


def _went_down(after: RouterCounters, before: RouterCounters) -> bool:
    """Whether any counter shrank, which only a restarted router explains."""
    if after.requests < before.requests or after.errors < before.errors:
        return True
    now = dict(after.buckets)
    return any(now.get(le, 0) < n for le, n in before.buckets)


def window(after: RouterCounters, before: RouterCounters | None) -> RouterCounters:
    """The requests between two readings; all of `after` when there is no earlier one.

    Counters of a restarted router start again from zero, so when any went down everything
    in `after` happened since the restart and the earlier reading no longer counts.
    """
    if before is None or _went_down(after, before):
        return after
    earlier = dict(before.buckets)
    return RouterCounters(
        requests=after.requests - before.requests,
        errors=after.errors - before.errors,
        buckets=[(le, n - earlier.get(le, 0)) for le, n in after.buckets],
    )


def histogram_quantile(q: float, buckets: list[tuple[float, int]], total: int) -> float | None:
    """Prometheus's `histogram_quantile` over cumulative finite buckets and the total count.

    Linear interpolation inside the bucket where the rank falls, the first bucket starting at
    0; a rank beyond the last finite bucket gives that bucket's upper bound, as Prometheus
    does. None without observations or without a finite bucket.
    """
    if total <= 0 or not buckets or not 0.0 <= q <= 1.0:
        return None
    bounds = sorted(buckets)
    # Prometheus forces the counts to be monotonic (a torn reading could break it); so do we.
    counts: list[int] = []
    for _, n in bounds:
        counts.append(max(n, counts[-1] if counts else 0))
    rank = q * max(total, counts[-1])
    b = next((i for i, n in enumerate(counts) if n >= rank), None)
    if b is None:
        return bounds[-1][0]
    start, below = (bounds[b - 1][0], counts[b - 1]) if b > 0 else (0.0, 0)
    end, inside = bounds[b][0], counts[b] - below
    if b == 0 and end <= 0:
        return end
    if inside == 0:  # only when q == 0: nothing to interpolate over
        return start
    return start + (end - start) * (rank - below) / inside


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def builtin_value(metric: str, counts: RouterCounters, seconds: float | None) -> float | None:
    """The value of a built-in metric over a window; None when the window holds no evidence.

    `seconds` is the window's length, needed by `request_rate` only (None: unknown).
    """
    if metric == "request_rate":
        if seconds is None or seconds <= 0 or not math.isfinite(seconds):
            return None
        return counts.requests / seconds
    if counts.requests <= 0:
        return None
    if metric == "error_rate":
        return counts.errors / counts.requests
    if metric == "latency_p50_ms":
        return _milliseconds(histogram_quantile(0.5, counts.buckets, counts.requests))
    if metric == "latency_p99_ms":
        return _milliseconds(histogram_quantile(0.99, counts.buckets, counts.requests))
    raise ValueError(f"{metric!r} is not a built-in metric")


def slo_burn_value(
    counts: RouterCounters, slo: str, objective: float, bucket: float | None
) -> float | None:
    """`slo_burn_rate` over a window: the bad share of its requests over (1 - objective).

    Availability: bad is a 5xx. Latency: bad is an answer slower than `bucket` (the router
    bucket the SLO's threshold is judged at). None without requests.
    """
    if counts.requests <= 0:
        return None
    if slo == "latency":
        within = next((n for le, n in counts.buckets if bucket is not None and le == bucket), 0)
        bad = counts.requests - within
    else:
        bad = counts.errors
    return (bad / counts.requests) / (1.0 - objective)
