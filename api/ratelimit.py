"""Failed key verifications, counted in a sliding window: in process, and across API replicas
through Redis when REDIS_URL is set (api/shared_auth.py).

A wrong secret with a known key prefix costs an argon2 verification (64 MiB, tens of ms);
without a limit anyone could keep the API's CPU and memory busy with them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from api.shared_auth import SharedAuth

Scope = Literal["key", "addr"]

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


class FailureLimits:
    """Failed verifications per key prefix and per client address: in process, and shared
    by every API replica through Redis when REDIS_URL is set. Both are counted; the longer
    wait wins, so a replica that loses Redis goes on with (at least) its own counts."""

    def __init__(self, per_key: int, per_address: int, shared: SharedAuth | None = None) -> None:
        self._per_key = FailureLimiter(per_key)
        self._per_address = FailureLimiter(per_address)
        self._shared = shared

    def _names(self, prefix: str | None, address: str) -> list[tuple[Scope, str, int]]:
        names: list[tuple[Scope, str, int]] = [("addr", address, self._per_address.limit)]
        if prefix is not None:
            names.append(("key", prefix, self._per_key.limit))
        return names

    async def retry_after(self, prefix: str | None, address: str) -> int | None:
        """Seconds until this key prefix and address may try again, or None when they may."""
        waits = [self._per_address.retry_after(address)]
        if prefix is not None:
            waits.append(self._per_key.retry_after(prefix))
        if self._shared is not None:
            waits.append(
                await self._shared.retry_after(self._names(prefix, address), WINDOW_SECONDS) or None
            )
        return max((w for w in waits if w is not None), default=None)

    async def failed(self, prefix: str, address: str) -> None:
        self._per_key.failed(prefix)
        self._per_address.failed(address)
        if self._shared is not None:
            await self._shared.failed(self._names(prefix, address), WINDOW_SECONDS)
