"""The hub of one API process: the pollers of the watched targets and their watchers, bounded."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import Gauge

from api.live.poller import Fetch, Mark, Poller, Snapshot, Watcher
from core.errors import DependencyUnavailableError, RateLimitedError

WATCHERS = Gauge("r2c_live_watchers", "Open live-update event streams of this API process")
POLLERS = Gauge("r2c_live_pollers", "Targets this API process polls for its event streams")

# The last snapshot (its id and a digest) of targets no longer watched, so a returning
# client keeps its place.
_REMEMBERED = 4096


class LiveHub:
    def __init__(self, *, interval: float, per_target: int, total: int) -> None:
        self.interval = interval
        self.per_target = per_target
        self.total = total
        self.pollers: dict[tuple[str, str], Poller] = {}
        self._remembered: OrderedDict[tuple[str, str], Mark] = OrderedDict()
        self._watchers = 0

    def admit(self, key: tuple[str, str]) -> None:
        """Refuse a new stream before it starts: 429 beyond the watchers of one target, 503
        beyond those of the process."""
        poller = self.pollers.get(key)
        if poller is not None and len(poller.watchers) >= self.per_target:
            raise RateLimitedError(
                f"{len(poller.watchers)} streams already watch {key[0]} {key[1]}",
                retry_after=5,
                hint="GET it instead, or raise R2C_LIVE_MAX_WATCHERS_PER_TARGET",
            )
        if self._watchers >= self.total:
            raise DependencyUnavailableError(
                f"this API process serves {self._watchers} event streams already",
                hint="retry later or on another replica; R2C_LIVE_MAX_WATCHERS sets the bound",
            )

    @asynccontextmanager
    async def watch(
        self, key: tuple[str, str], fetch: Fetch, resume_id: int | None = None
    ) -> AsyncIterator[Watcher]:
        """A watcher of the target, for the time of the `with`: the first starts the target's
        poller, the last to leave stops it."""
        poller = self.pollers.get(key)
        if poller is None or poller.task.done():
            poller = Poller(key, fetch, self.interval, self._remembered.get(key))
            self.pollers[key] = poller
            poller.task.add_done_callback(lambda _: self._forget(poller))
            POLLERS.set(len(self.pollers))
        watcher = Watcher(key, resume_id)
        poller.join(watcher)
        self._watchers += 1
        WATCHERS.inc()
        try:
            yield watcher
        finally:
            self._watchers -= 1
            WATCHERS.dec()
            poller.watchers.discard(watcher)
            if not poller.watchers:
                self._forget(poller)
                await poller.stop()

    async def snapshots(
        self,
        key: tuple[str, str],
        fetch: Fetch,
        resume_id: int | None = None,
        *,
        max_seconds: float,
    ) -> AsyncIterator[Snapshot]:
        """One stream's snapshots, until the final one; or until `max_seconds` have passed,
        so a long watch authenticates again (a revoked key stops being served) on the
        reconnect with Last-Event-ID that follows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        async with self.watch(key, fetch, resume_id) as watcher:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    snapshot = await asyncio.wait_for(watcher.next(), remaining)
                except TimeoutError:
                    return
                if snapshot is None:
                    return
                yield snapshot
                if snapshot.final:
                    return

    def _forget(self, poller: Poller) -> None:
        if self.pollers.get(poller.key) is poller:
            del self.pollers[poller.key]
            if poller.latest is not None:
                self._remembered[poller.key] = poller.latest.mark()
                self._remembered.move_to_end(poller.key)
                while len(self._remembered) > _REMEMBERED:
                    self._remembered.popitem(last=False)
            POLLERS.set(len(self.pollers))

    async def close(self) -> None:
        """Stop every poller (their streams end): at shutdown, so no task outlives the app."""
        pollers = list(self.pollers.values())
        for poller in pollers:
            self._forget(poller)
            await poller.stop()
