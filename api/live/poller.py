"""One poller per watched deployment or release: it reads the target's state at a bounded
interval and hands each change to every watcher's small mailbox."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter

from core.errors import NotFoundError

log = logging.getLogger(__name__)

POLLS = Counter(
    "r2c_live_polls_total",
    "State reads (a workflow query while it runs) by the live-update pollers, by kind; one "
    "poller per watched target, whatever the number of watchers",
    ["kind"],
)
POLL_FAILURES = Counter(
    "r2c_live_poll_failures_total",
    "Live-update state reads that failed (the poller tries again at its next tick), by kind",
    ["kind"],
)

# A watcher that reads slower than the target changes skips to newer snapshots: every
# snapshot is complete, so the oldest unread ones are dropped, never piled up.
MAILBOX = 4


@dataclass(frozen=True)
class Mark:
    """What a hub keeps of a target no longer watched: enough to recognise its last body."""

    id: int
    digest: bytes
    final: bool


@dataclass(frozen=True)
class Snapshot:
    id: int
    body: str  # the JSON body GET answers
    final: bool

    def mark(self) -> Mark:
        return Mark(self.id, _digest(self.body), self.final)


def _digest(body: str) -> bytes:
    return hashlib.sha256(body.encode()).digest()


# The target's JSON body as GET answers it, and whether its state is final.
Fetch = Callable[[], Awaitable[tuple[str, bool]]]


class Watcher:
    """One stream's mailbox: the latest few snapshots, oldest dropped first."""

    def __init__(self, key: tuple[str, str], resume_id: int | None) -> None:
        self.key = key
        self._skip = resume_id  # the client has this snapshot already (Last-Event-ID)
        self._queue: deque[Snapshot] = deque(maxlen=MAILBOX)
        self._wake = asyncio.Event()
        self._closed = False

    def put(self, snapshot: Snapshot) -> None:
        if self._skip is not None:
            skip, self._skip = self._skip, None
            if snapshot.id == skip and not snapshot.final:
                return
        self._queue.append(snapshot)
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def next(self) -> Snapshot | None:
        """The next snapshot to send; None once the poller has nothing more (the stream ends)."""
        while not self._queue:
            if self._closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        return self._queue.popleft()


class Poller:
    """Reads one target every `interval` seconds while anyone watches it; stops on its own
    when the target reaches a final state or no longer exists."""

    def __init__(
        self,
        key: tuple[str, str],
        fetch: Fetch,
        interval: float,
        remembered: Mark | None,
    ) -> None:
        self.key = key
        self.watchers: set[Watcher] = set()
        self.latest: Snapshot | None = None
        self._fetch = fetch
        self._interval = interval
        # The last snapshot of this target an earlier poller sent: an unchanged body keeps its
        # id, so a client resuming with it is not sent the same state again.
        self._remembered = remembered
        self.task = asyncio.create_task(self._run(), name=f"live-poller-{key[0]}-{key[1]}")

    def join(self, watcher: Watcher) -> None:
        self.watchers.add(watcher)
        if self.latest is not None:
            watcher.put(self.latest)

    async def _run(self) -> None:
        kind, failing = self.key[0], False
        try:
            while True:
                try:
                    body, final = await self._fetch()
                except NotFoundError:
                    return
                except Exception:
                    POLL_FAILURES.labels(kind).inc()
                    if not failing:  # once per outage, not at every tick
                        log.warning("live poll of %s %s failed", *self.key, exc_info=True)
                    failing = True
                    await asyncio.sleep(self._interval)
                    continue
                finally:
                    POLLS.labels(kind).inc()
                failing = False
                if self.latest is None or body != self.latest.body:
                    self._publish(body, final)
                if final:
                    return
                await asyncio.sleep(self._interval)
        finally:
            for watcher in self.watchers:
                watcher.close()

    def _publish(self, body: str, final: bool) -> None:
        before = self.latest.mark() if self.latest is not None else self._remembered
        if before is not None and before.final == final and before.digest == _digest(body):
            snapshot = Snapshot(before.id, body, final)
        else:
            floor = before.id + 1 if before is not None else 0
            # Milliseconds: ids keep increasing across pollers (a restart, another replica).
            snapshot = Snapshot(max(floor, time.time_ns() // 1_000_000), body, final)
        self.latest = snapshot
        for watcher in self.watchers:
            watcher.put(snapshot)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
