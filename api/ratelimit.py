"""Failed key verifications, counted in a sliding window, in process (Redis comes later).

A wrong secret with a known key prefix costs an argon2 verification (64 MiB, tens of ms);
without a limit anyone could keep the API's CPU and memory busy with them.
"""

from __future__ import annotations

import math
import time
from collections import deque

WINDOW_SECONDS = 60.0
MAX_TRACKED = 10_000  # keys (prefixes, addresses) remembered at most; the oldest go first


class FailureLimiter:
    """At most `limit` failures per key within `window` seconds."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str) -> int | None:
        """Seconds until `key` may try again, or None when it may now."""
        now = time.monotonic()
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, key: str) -> None:
        """Count one failure of `key`."""
        now = time.monotonic()
        times = self._recent(key, now)
        if times is None:
            if len(self._failures) >= MAX_TRACKED:
                del self._failures[next(iter(self._failures))]
            times = self._failures[key] = deque()
        times.append(now)
