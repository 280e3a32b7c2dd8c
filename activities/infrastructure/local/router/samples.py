"""Per-version latency samples and counts of the router, in time buckets, for the judge.

A statistical judge compares a new version with a baseline: the stable version in the same
window (canary), or the target's own window before the deployment (rolling, blue-green). The
Prometheus counters of `metrics.py` carry no time and no individual latencies, so the router
also keeps, per version, a ring of time buckets (`bucket_seconds` wide, 10 s by default), each
with its request count, its error count (5xx, the router's own 502 included: the definition
of `error_rate`) and a uniform sample of its latencies (Algorithm R, at most `PER_BUCKET`), in
whole microseconds: 4 bytes each, and integers serialize several times faster than floats,
which matters because the router proxies nothing while it builds an answer.

Bounded whatever the traffic: at most `MAX_VERSIONS` versions (the one whose latest request is
oldest goes first), `BUCKETS` buckets per version (older ones fall off the ring), `PER_BUCKET`
latencies per bucket as 4-byte integers: 4 B x 1,000 x 180 x 16 = 11.5 MB of samples at most
(docs/router-samples.md has the measured figure). On the hot path: a dict lookup, two integer
additions, and an append or one random draw per request.
"""

from __future__ import annotations

import math
import os
import random
import time
from array import array
from collections import deque
from urllib.parse import parse_qs

PER_BUCKET = 1000
BUCKETS = 180
MAX_VERSIONS = 16
DEFAULT_BUCKET_SECONDS = 10
BUCKET_SECONDS_ENV = "R2C_ROUTER_SAMPLE_SECONDS"
MAX_VERSION_CHARS = 200
SAMPLE_BYTES = array("I").itemsize
MAX_MICROSECONDS = 2**32 - 1  # 71 minutes: more than any upstream timeout


class Bucket:
    """The requests of one version that ended in [start, start + bucket_seconds)."""

    __slots__ = ("start", "requests", "errors", "latencies")

    def __init__(self, start: int) -> None:
        self.start = start
        self.requests = 0
        self.errors = 0
        self.latencies = array("I")  # microseconds


class VersionRing:
    """The latest `BUCKETS` buckets of one version (gaps without traffic hold no bucket)."""

    __slots__ = ("buckets", "current")

    def __init__(self) -> None:
        self.buckets: deque[Bucket] = deque(maxlen=BUCKETS)
        self.current: Bucket | None = None

    def bucket(self, start: int) -> Bucket:
        current = self.current
        # A clock stepped back keeps counting in the current bucket rather than reopen one.
        if current is None or start > current.start:
            current = Bucket(start)
            self.buckets.append(current)
            self.current = current
        return current


def bucket_seconds_from_env() -> int:
    """The bucket width: R2C_ROUTER_SAMPLE_SECONDS (1-60 whole seconds), else 10."""
    raw = os.environ.get(BUCKET_SECONDS_ENV, "")
    if not raw:
        return DEFAULT_BUCKET_SECONDS
    if not raw.isdigit() or not 1 <= int(raw) <= 60:
        raise ValueError(f"{BUCKET_SECONDS_ENV} must be whole seconds from 1 to 60, got {raw!r}")
    return int(raw)


class QueryError(ValueError):
    """A bad `/samples` query: answered 400 with this message."""


class RouterSamples:
    """Every version's ring; `observe` is called once per proxied request."""

    def __init__(self, bucket_seconds: int = DEFAULT_BUCKET_SECONDS, seed: int | None = None):
        if not 1 <= bucket_seconds <= 60:
            raise ValueError("bucket_seconds must be from 1 to 60")
        self.bucket_seconds = bucket_seconds
        self.history_seconds = bucket_seconds * BUCKETS
        self.versions: dict[str, VersionRing] = {}
        self._random = random.Random(seed).random  # sampling, not secrets

    def observe(self, version: str, status: int, seconds: float, now: float | None = None) -> None:
        """Count one request (an error when `status` >= 500) and maybe keep its latency.

        Written flat (no call per bucket) because it runs once per proxied request.
        """
        ring = self.versions.get(version)
        if ring is None:
            ring = self._add(version)
        t = int(time.time() if now is None else now)
        start = t - t % self.bucket_seconds
        bucket = ring.current
        if bucket is None or start > bucket.start:
            bucket = ring.bucket(start)
        n = bucket.requests = bucket.requests + 1
        if status >= 500:
            bucket.errors += 1
        if n <= PER_BUCKET:
            bucket.latencies.append(min(int(seconds * 1_000_000), MAX_MICROSECONDS))
            return
        # Algorithm R: the n-th request replaces a kept one with probability PER_BUCKET / n,
        # so every request of the bucket is equally likely to be in the sample.
        slot = int(self._random() * n)
        if slot < PER_BUCKET:
            bucket.latencies[slot] = min(int(seconds * 1_000_000), MAX_MICROSECONDS)

    def _add(self, version: str) -> VersionRing:
        if len(self.versions) >= MAX_VERSIONS:
            # Rare (a new version): the one whose latest request is oldest makes room.
            oldest = min(
                self.versions,
                key=lambda v: c.start if (c := self.versions[v].current) is not None else -1,
            )
            del self.versions[oldest]
        ring = self.versions[version] = VersionRing()
        return ring

    def sample_count(self) -> int:
        """Latencies held in all (for the memory figure)."""
        return sum(len(b.latencies) for r in self.versions.values() for b in r.buckets)

    # ------------------------------------------------------------------ the endpoint

    def windows(self, version: str, since: float, until: float) -> list[dict[str, object]]:
        """The buckets of `version` that start in [since, until), oldest first."""
        ring = self.versions.get(version)
        if ring is None:
            return []
        width = self.bucket_seconds
        return [
            {
                "start": b.start,
                "end": b.start + width,
                "requests": b.requests,
                "errors": b.errors,
                "latencies_us": b.latencies.tolist(),
            }
            for b in list(ring.buckets)
            if since <= b.start < until
        ]

    def answer(self, query: bytes, now: float | None = None) -> dict[str, object]:
        """The JSON of `GET /samples?version=V[&since=S][&until=U]` (unix seconds).

        Defaults: the whole history up to now. Raises QueryError on a bad query.
        """
        now = time.time() if now is None else now
        version, since, until = self._parse(query, now)
        return {
            "version": version,
            "bucket_seconds": self.bucket_seconds,
            "history_seconds": self.history_seconds,
            "since": since,
            "until": until,
            "versions": sorted(self.versions),
            "windows": self.windows(version, since, until),
        }

    def _parse(self, query: bytes, now: float) -> tuple[str, float, float]:
        try:
            fields = parse_qs(
                query.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=bool(query),
                errors="strict",
            )
        except (UnicodeDecodeError, ValueError):
            raise QueryError("the query string is malformed") from None
        unknown = fields.keys() - {"version", "since", "until"}
        if unknown:
            raise QueryError(
                f"unknown parameter {sorted(unknown)[0][:50]!r}: use version, since, until"
            )
        if any(len(values) > 1 for values in fields.values()):
            raise QueryError("each parameter may be given once")
        version = fields.get("version", [""])[0]
        if not version or len(version) > MAX_VERSION_CHARS or not version.isprintable():
            known = ", ".join(sorted(self.versions)) or "none yet"
            raise QueryError(
                f"version=<1-{MAX_VERSION_CHARS} printable characters> is required "
                f"(versions seen: {known})"
            )
        oldest = now - self.history_seconds
        # Older than the history: nothing is held there, so the answer covers what is, and
        # its `since` says so (a reader compares it with what it asked).
        since = max(self._time(fields, "since", oldest), oldest)
        until = self._time(fields, "until", now + self.bucket_seconds)
        if until <= since:
            raise QueryError("until must be later than since")
        if until - since > self.history_seconds + self.bucket_seconds:
            raise QueryError(
                f"a window spans at most the history, {self.history_seconds} s "
                f"({BUCKETS} buckets of {self.bucket_seconds} s)"
            )
        return version, since, until

    @staticmethod
    def _time(fields: dict[str, list[str]], name: str, default: float) -> float:
        if name not in fields:
            return default
        raw = fields[name][0]
        try:
            value = float(raw)
        except ValueError:
            raise QueryError(f"{name} must be unix seconds, got {raw[:50]!r}") from None
        if not math.isfinite(value) or not 0 <= value < 1e11:
            raise QueryError(f"{name} must be unix seconds, got {raw[:50]!r}")
        return value
