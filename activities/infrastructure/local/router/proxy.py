"""The local router: an HTTP/1.1 reverse proxy that splits traffic across slots by weight.

Built on asyncio protocols and httptools (the parser uvicorn uses), with keep-alive pools to
the upstreams, because it sits on the hot path of every request a component serves. It
follows a routing table on disk (see `table.py`), ejects instances that fail health checks,
and counts requests and latency per version. Paths under `/_r2c/` are its own: `status` and
`metrics`. Bodies are buffered, which suits the APIs this platform deploys (not streaming).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import httptools

from activities.infrastructure.local.router.metrics import RouterMetrics
from activities.infrastructure.local.router.table import Backend, RouteTable, read_table

log = logging.getLogger("r2c.router")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)
UPSTREAM_TIMEOUT = 60.0
MAX_IDLE_PER_BACKEND = 64
RELOAD_EVERY = 0.05


class UpstreamError(Exception):
    """The upstream failed before answering; `sent` tells whether the request left us."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class BackendState:
    """A backend with its health, its idle connections and its requests in flight."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.healthy = True  # the provider only routes to instances that passed their check
        self.successes = 0
        self.failures = 0
        self.in_flight = 0
        self.idle: list[Upstream] = []

    def close_idle(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class Upstream(asyncio.Protocol):
    """One keep-alive connection to a backend, used by one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.keep_alive = True
        self.closed = False
        self.head_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(
                UpstreamError(f"connection closed: {exc or 'by peer'}", sent=True)
            )

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self.close()
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(UpstreamError(f"bad response: {err}", sent=True))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.headers = []
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_request:  # a HEAD answer has no body, whatever Content-Length says
            self.keep_alive = False
            self._done()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self._done()

    def _done(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def exchange(self, request: bytes, head: bool) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        self.head_request = head
        self.transport.write(request)
        # A timer handle, not asyncio.wait_for: this is the hot path and wait_for costs more.
        timer = loop.call_later(UPSTREAM_TIMEOUT, self._time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(
                UpstreamError(f"no answer within {UPSTREAM_TIMEOUT:.0f}s", sent=True)
            )
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Router:
    """Picks a backend for each request, proxies it, and keeps health and metrics."""

    def __init__(self, table_path: Path, component: str, environment: str) -> None:
        self.table_path = table_path
        self.table = RouteTable(component=component, environment=environment)
        self.metrics = RouterMetrics(component, environment)
        self.backends: dict[str, BackendState] = {}
        self.slots: dict[str, list[BackendState]] = {}
        self._current: dict[str, int] = {}
        self._rr: dict[str, int] = {}
        self._stamp: tuple[int, int] | None = None
        self.in_flight = 0
        # Backends taken out of the table while requests to them were still in flight.
        self.draining: list[BackendState] = []

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

    async def forward(self, req: Request) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Proxy one request; retry once on another backend when that cannot do harm."""
        tried: BackendState | None = None
        for _attempt in range(2):
            state = self.pick(exclude=tried)
            if state is None:
                break
            tried = state
            started = time.perf_counter()
            state.in_flight += 1
            try:
                conn = await self._connect(state)
                try:
                    await conn.exchange(req.upstream_bytes(), req.method == b"HEAD")
                except UpstreamError:
                    conn.close()
                    raise
                self._release(state, conn)
            except UpstreamError as err:
                self._passive_failure(state)
                # Never replay a request that may have been processed, unless it is idempotent.
                if err.sent and req.method not in (b"GET", b"HEAD", b"OPTIONS"):
                    self.metrics.observe(state.backend.version, 502, time.perf_counter() - started)
                    return _error(502, f"upstream {state.backend.instance_id} failed: {err}")
                continue
            finally:
                state.in_flight -= 1
            state.failures = 0
            self.metrics.observe(state.backend.version, conn.status, time.perf_counter() - started)
            return conn.status, conn.headers, b"".join(conn.body)
        return _error(503, "no healthy instance to route to")

    # ------------------------------------------------------------------ own endpoints

    def own(self, path: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if path.startswith(b"/_r2c/metrics"):
            body = self.metrics.render().encode()
            return 200, [(b"content-type", b"text/plain; version=0.0.4")], body
        if path.startswith(b"/_r2c/status"):
            return 200, [(b"content-type", b"application/json")], json.dumps(self.status()).encode()
        return _error(404, "unknown router path")

    def status(self) -> dict[str, Any]:
        return {
            "component": self.table.component,
            "environment": self.table.environment,
            "generation": self.table.generation,
            "weights": self.table.weights,
            "in_flight": self.in_flight,
            "draining": self._draining(),
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


def _error(status: int, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": {"type": "RouterError", "message": message}}).encode()
    return status, [(b"content-type", b"application/json")], body


class Request:
    """A parsed client request."""

    __slots__ = ("method", "url", "headers", "body", "keep_alive", "peer")

    def __init__(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]],
                 body: bytes, keep_alive: bool, peer: bytes) -> None:  # fmt: skip
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.peer = peer

    def upstream_bytes(self) -> bytes:
        lines = [self.method, b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.headers:
            if name.lower() not in HOP_BY_HOP:
                lines += [name, b": ", value, b"\r\n"]
        lines += [b"x-forwarded-for: ", self.peer, b"\r\n"]
        lines += [b"content-length: ", str(len(self.body)).encode(), b"\r\n\r\n", self.body]
        return b"".join(lines)


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests and answers them in order (keep-alive)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Request] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.peer = b"unknown"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0]).encode()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reply(*_error(501, "protocol upgrades are not supported"), keep_alive=False)
        except httptools.HttpParserError:
            self._reply(*_error(400, "malformed HTTP request"), keep_alive=False)

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.queue.append(
            Request(
                self.parser.get_method(),
                self.url,
                self.headers,
                b"".join(self.body),
                self.parser.should_keep_alive(),
                self.peer,
            )
        )
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        router = self.router
        while self.queue and self.transport is not None:
            req = self.queue.popleft()
            router.in_flight += 1
            try:
                if req.url.startswith(b"/_r2c/"):
                    answer = router.own(req.url)
                else:
                    answer = await router.forward(req)
            finally:
                router.in_flight -= 1
            self._reply(*answer, keep_alive=req.keep_alive)

    def _reply(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, keep_alive: bool
    ) -> None:
        if self.transport is None:
            return
        lines = [b"HTTP/1.1 ", str(status).encode(), b" ", _REASONS.get(status, b"-"), b"\r\n"]
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                lines += [name, b": ", value, b"\r\n"]
        lines += [b"content-length: ", str(len(body)).encode(), b"\r\n"]
        if not keep_alive:
            lines.append(b"connection: close\r\n")
        lines += [b"\r\n", body]
        self.transport.write(b"".join(lines))
        if not keep_alive:
            self.transport.close()
            self.transport = None


_REASONS = {
    200: b"OK", 201: b"Created", 202: b"Accepted", 204: b"No Content", 301: b"Moved Permanently",
    302: b"Found", 304: b"Not Modified", 400: b"Bad Request", 401: b"Unauthorized",
    403: b"Forbidden", 404: b"Not Found", 409: b"Conflict", 422: b"Unprocessable Entity",
    429: b"Too Many Requests", 500: b"Internal Server Error", 501: b"Not Implemented",
    502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout",
}  # fmt: skip


async def serve(table_path: Path, component: str, environment: str, host: str, port: int,
                stop: asyncio.Event) -> None:  # fmt: skip
    """Serve until `stop` is set, then drain requests in flight (at most 10 s)."""
    router = Router(table_path, component, environment)
    router.reload()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ClientConnection(router),
        host,
        port,
        reuse_address=True,
        # A router restarted after a crash binds its port again although connections of the
        # dead one may linger in the kernel (FIN-WAIT); the provider never runs two at once.
        reuse_port=True,
        backlog=2048,
    )
    log.info("router listening", extra={"port": port, "component": component})

    async def follow_table() -> None:
        while True:
            router.reload()
            await asyncio.sleep(RELOAD_EVERY)

    async def health_loop() -> None:
        while True:
            await asyncio.sleep(router.table.health.interval_seconds)
            await router.check_health()

    tasks = [asyncio.create_task(follow_table()), asyncio.create_task(health_loop())]
    try:
        await stop.wait()
    finally:
        server.close()
        deadline = time.monotonic() + 10
        # Polled: an event set on every request's end would tax the hot path for this once.
        while router.in_flight and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
