"""Component specs the worker read a moment ago, for the steps that run many times a
deployment (a canary's weight steps).

Reading the spec from the store on every weight step was the largest part of what a canary
costs over a bare workflow in the worker (the deployment benchmark: 1.38 with a read per step,
1.24 without). Like a Kubernetes controller's informer cache, the copy is allowed to be a
little behind: a spec changed meanwhile (a new health check path, say) reaches the router at
the next step after `ttl` seconds, and at once with the next start of instances, which always
reads the store afresh."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from core.models.components import Component

# How long a weight step may use a spec read earlier. Short: the cache saves repeated reads
# within one deployment's steps, it is not a second source of truth.
TTL_SECONDS = 5.0
# A worker runs at most a few hundred deployments at once; past this the oldest go.
MAX_ENTRIES = 1024


class ComponentCache:
    def __init__(
        self,
        load: Callable[[str], Awaitable[Component]],
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, Component]] = {}

    async def get(self, name: str, *, fresh: bool = False) -> Component:
        """The spec, from the store when `fresh` or when the copy is older than the TTL."""
        now = self._clock()
        entry = self._entries.get(name)
        if not fresh and entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        component = await self._load(name)  # raises NotFoundError for a deleted component
        self._entries.pop(name, None)  # re-inserted last: dicts keep insertion order
        self._entries[name] = (now, component)
        while len(self._entries) > MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]
        return component
