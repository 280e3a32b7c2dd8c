"""Per-version request metrics of the router, in Prometheus text format.

Kept as plain counters (no client library on the hot path): requests by version and status
code, and a latency histogram by version. Canary analysis on one machine reads these.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

# Seconds; fine at the low end, where a local service answers.
BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class VersionStats:
    """Counters of one version."""

    __slots__ = ("codes", "buckets", "count", "total")

    def __init__(self) -> None:
        self.codes: dict[int, int] = defaultdict(int)
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, status: int, seconds: float) -> None:
        self.codes[status] += 1
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds


class RouterMetrics:
    """All versions' counters, plus upstream errors the router answered itself."""

    def __init__(self, component: str, environment: str) -> None:
        self.labels = f'component="{component}",environment="{environment}"'
        self.versions: dict[str, VersionStats] = defaultdict(VersionStats)

    def observe(self, version: str, status: int, seconds: float) -> None:
        self.versions[version].observe(status, seconds)

    def render(self) -> str:
        out = [
            "# HELP r2c_router_requests_total Requests proxied, by version and status code.",
            "# TYPE r2c_router_requests_total counter",
        ]
        for version, stats in sorted(self.versions.items()):
            for code, n in sorted(stats.codes.items()):
                out.append(
                    f'r2c_router_requests_total{{{self.labels},version="{version}",'
                    f'code="{code}"}} {n}'
                )
        out += [
            "# HELP r2c_router_request_duration_seconds Time to answer, by version.",
            "# TYPE r2c_router_request_duration_seconds histogram",
        ]
        for version, stats in sorted(self.versions.items()):
            labels = f'{self.labels},version="{version}"'
            cumulative = 0
            for bound, n in zip(BUCKETS, stats.buckets, strict=False):
                cumulative += n
                out.append(
                    f'r2c_router_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                    f"{cumulative}"
                )
            out.append(
                f'r2c_router_request_duration_seconds_bucket{{{labels},le="+Inf"}} {stats.count}'
            )
            out.append(f"r2c_router_request_duration_seconds_sum{{{labels}}} {stats.total:.6f}")
            out.append(f"r2c_router_request_duration_seconds_count{{{labels}}} {stats.count}")
        return "\n".join(out) + "\n"
