"""The router's decisions: which backend takes a request, when one is ejected, what it reports.

It follows a routing table on disk (see `table.py`), splits traffic across slots by weight,
ejects instances that fail health checks or requests, and counts requests and latency per
version.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activities.infrastructure.local.router.metrics import RouterMetrics
from activities.infrastructure.local.router.samples import (
    QueryError,
    RouterSamples,
    bucket_seconds_from_env,
)
from activities.infrastructure.local.router.table import RouteTable, read_table
from activities.infrastructure.local.router.upstream import (
    MAX_IDLE_PER_BACKEND,
    UPSTREAM_TIMEOUT,
    BackendState,
    Upstream,
    UpstreamError,
)

if TYPE_CHECKING:
    from activities.infrastructure.local.router.client import ClientConnection
    from activities.infrastructure.local.router.request import Request
    from activities.infrastructure.local.router.tracing import RouterTracing, TracedRequest

log = logging.getLogger("r2c.router")

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
_IDEMPOTENT = (b"GET", b"HEAD", b"OPTIONS")


def error_answer(status: int, message: str) -> Answer:
    """An answer of the router itself, as JSON."""
    body = json.dumps({"error": {"type": "RouterError", "message": message}}).encode()
    return status, [(b"content-type", b"application/json")], body


class Router:
    """Picks a backend for each request, proxies it, and keeps health and metrics."""

    def __init__(
        self,
        table_path: Path,
        component: str,
        environment: str,
        tracing: RouterTracing | None = None,
    ) -> None:
        self.table_path = table_path
        self.tracing = tracing  # None: tracing off, and no work for it on any request
        self.table = RouteTable(component=component, environment=environment)
        self.metrics = RouterMetrics(component, environment)
        # Latency samples and counts per version and time bucket, for the judge's baselines.
        self.samples = RouterSamples(bucket_seconds_from_env())
        self.backends: dict[str, BackendState] = {}
        self.slots: dict[str, list[BackendState]] = {}
        self._current: dict[str, int] = {}
        self._rr: dict[str, int] = {}
        self._stamp: tuple[int, int] | None = None
        self.in_flight = 0
        # Backends taken out of the table while requests to them were still in flight.
        self.draining: list[BackendState] = []
        # Open client connections and upstream exchanges, for the sweep of their timeouts.
        self.connections: set[ClientConnection] = set()
        self.exchanges: set[Upstream] = set()
        # The sweep's clock, read for deadlines instead of the system's on every request.
        self.now = time.monotonic()

    # ------------------------------------------------------------------ table

    def reload(self) -> bool:
        """Apply the table on disk if it changed; True when it did."""
        try:
            st = self.table_path.stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return False
        try:
            table = read_table(self.table_path)
        except (OSError, ValueError) as err:
            log.error("cannot read routing table %s: %s", self.table_path, err)
            return False
        self._stamp = stamp
        self.apply(table)
        return True

    def apply(self, table: RouteTable) -> None:
        fresh: dict[str, BackendState] = {}
        for backend in table.backends:
            state = self.backends.get(backend.instance_id)
            if state is None or state.backend != backend:
                if state is not None:
                    state.close_idle()
                state = BackendState(backend)
            fresh[backend.instance_id] = state
        for gone in self.backends.keys() - fresh.keys():
            self.backends[gone].close_idle()
            self.draining.append(self.backends[gone])
        self.backends = fresh
        slots: dict[str, list[BackendState]] = {}
        for state in fresh.values():
            slots.setdefault(state.backend.slot, []).append(state)
        self.slots = slots
        self._current = dict.fromkeys(table.weights, 0)
        self.table = table
        if self.tracing is not None:
            self.tracing.apply(table)
        log.info(
            "routing table applied",
            extra={"generation": table.generation, "weights": table.weights},
        )

    # ------------------------------------------------------------------ choice

    def pick(self, exclude: BackendState | None = None) -> BackendState | None:
        """Smooth weighted round robin over slots with a healthy backend, then round robin
        within the slot: exact proportions, no randomness, so 10% means every tenth request."""
        total = 0
        best: str | None = None
        for slot, weight in self.table.weights.items():
            if weight <= 0 or not any(
                b.healthy and b is not exclude for b in self.slots.get(slot, ())
            ):
                continue
            total += weight
            self._current[slot] = self._current.get(slot, 0) + weight
            if best is None or self._current[slot] > self._current[best]:
                best = slot
        if best is None:
            return None
        self._current[best] -= total
        members = [b for b in self.slots[best] if b.healthy and b is not exclude]
        index = self._rr.get(best, 0) % len(members)
        self._rr[best] = index + 1
        return members[index]

    # ------------------------------------------------------------------ proxying

    async def _connect(self, state: BackendState) -> Upstream:
        while state.idle:
            conn = state.idle.pop()
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        b = state.backend
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(Upstream, b.host, b.port), timeout=5
            )
        except (OSError, TimeoutError) as err:
            raise UpstreamError(f"cannot connect to {b.host}:{b.port}: {err}", sent=False) from err
        return proto

    def _release(self, state: BackendState, conn: Upstream) -> None:
        if conn.keep_alive and not conn.closed and len(state.idle) < MAX_IDLE_PER_BACKEND:
            if state is self.backends.get(state.backend.instance_id):
                state.idle.append(conn)
                return
        conn.close()

    def _passive_failure(self, state: BackendState) -> None:
        state.successes = 0
        state.failures += 1
        if state.healthy and state.failures >= self.table.health.unhealthy_threshold:
            state.healthy = False
            log.warning(
                "instance ejected after failed requests",
                extra={"instance": state.backend.instance_id, "version": state.backend.version},
            )

    async def forward(self, req: Request, traced: TracedRequest | None = None) -> Answer:
        """Proxy one request; retry once on another backend when that cannot do harm. With
        tracing off, it costs a request nothing but tests for None."""
        if self.tracing is not None and traced is None:
            traced = self.tracing.sample(req)
            if traced is not None:
                return await self._traced(req, traced)
        tried: BackendState | None = None
        raw = b"" if traced is not None else req.upstream_bytes(self.table.limits.trust_forwarded)
        head = req.method == b"HEAD"
        for _attempt in range(2):
            state = self.pick(exclude=tried)
            if state is None:
                break
            tried = state
            if traced is not None:
                raw = traced.prepare(state, self.table.limits.trust_forwarded)
            started = time.perf_counter()
            state.in_flight += 1
            try:
                conn = await self._connect(state)
                self.exchanges.add(conn)
                try:
                    await conn.exchange(raw, head, self.now + UPSTREAM_TIMEOUT)
                except UpstreamError:
                    conn.close()
                    raise
                finally:
                    self.exchanges.discard(conn)
                self._release(state, conn)
            except UpstreamError as err:
                self._passive_failure(state)
                # Never replay a request that may have been processed, unless it is idempotent.
                if err.sent and req.method not in _IDEMPOTENT:
                    took = time.perf_counter() - started
                    self.metrics.observe(state.backend.version, 502, took)
                    self.samples.observe(state.backend.version, 502, took)
                    return error_answer(502, f"upstream {state.backend.instance_id} failed: {err}")
                continue
            finally:
                state.in_flight -= 1
            state.failures = 0
            took = time.perf_counter() - started
            self.metrics.observe(state.backend.version, conn.status, took)
            self.samples.observe(state.backend.version, conn.status, took)
            return conn.status, conn.headers, b"".join(conn.body)
        return error_answer(503, "no healthy instance to route to")

    async def _traced(self, req: Request, traced: TracedRequest) -> Answer:
        status = 500
        try:
            answer = await self.forward(req, traced)
            status = answer[0]
            return answer
        finally:
            traced.finish(status)

    def sweep(self, now: float) -> None:
        """Enforce every deadline: exchanges waiting on an upstream, slow and idle clients."""
        self.now = now
        for conn in [c for c in self.exchanges if now > c.deadline]:
            conn.time_out()
        for client in [c for c in self.connections if c.expired(now)]:
            client.time_out(now)

    # ------------------------------------------------------------------ own endpoints

    def own(self, path: bytes) -> Answer:
        """The admin port's answers: `/status` (JSON), `/metrics` (Prometheus text) and
        `/samples?version=V&since=S&until=U` (JSON, see samples.py)."""
        path, _, query = path.partition(b"?")
        if path == b"/samples":
            try:
                found = self.samples.answer(query)
            except QueryError as err:
                return error_answer(400, str(err))
            return 200, [(b"content-type", b"application/json")], json.dumps(found).encode()
        if path == b"/metrics":
            body = self.metrics.render().encode()
            return 200, [(b"content-type", b"text/plain; version=0.0.4")], body
        if path == b"/status":
            return 200, [(b"content-type", b"application/json")], json.dumps(self.status()).encode()
        return error_answer(404, "unknown router path: use /status, /metrics or /samples")

    def status(self) -> dict[str, Any]:
        return {
            "component": self.table.component,
            "environment": self.table.environment,
            "generation": self.table.generation,
            "weights": self.table.weights,
            "in_flight": self.in_flight,
            "draining": self._draining(),
            "connections": len(self.connections),
            "backends": [
                {
                    **s.backend.model_dump(),
                    "healthy": s.healthy,
                    "in_flight": s.in_flight,
                }
                for s in self.backends.values()
            ],
        }

    def _draining(self) -> int:
        self.draining = [s for s in self.draining if s.in_flight > 0]
        return sum(s.in_flight for s in self.draining)

    # ------------------------------------------------------------------ health

    async def check_health(self) -> None:
        """Probe every backend once; flip its state after the configured thresholds."""
        policy = self.table.health
        states = list(self.backends.values())
        results = await asyncio.gather(*(self._probe(s, policy.path) for s in states))
        for state, ok in zip(states, results, strict=True):
            if ok:
                state.failures = 0
                state.successes += 1
                if not state.healthy and state.successes >= policy.healthy_threshold:
                    state.healthy = True
                    log.info(
                        "instance back in rotation", extra={"instance": state.backend.instance_id}
                    )
            else:
                self._passive_failure(state)

    async def _probe(self, state: BackendState, path: str) -> bool:
        b = state.backend
        try:
            async with asyncio.timeout(self.table.health.timeout_seconds):
                reader, writer = await asyncio.open_connection(b.host, b.port)
                try:
                    writer.write(
                        f"GET {path} HTTP/1.1\r\nHost: {b.host}:{b.port}\r\n"
                        "Connection: close\r\n\r\n".encode()
                    )
                    line = await reader.readline()
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            return False
        parts = line.split()
        return len(parts) >= 2 and parts[1].startswith(b"2")
