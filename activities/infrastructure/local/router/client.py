"""The router's side towards its clients: parse requests within bounds, answer them in order.

Each connection is bounded (URL, headers, body, requests queued, bytes queued) and timed
(to send a request's head, between pieces of its body, idle between requests, stalled
reading the answers), because every client shares the router with every other. Deadlines are
timestamps checked by the router's periodic sweep, not a timer per request. Reading pauses
while the queue is full or the client does not read its answers (back-pressure), so a fast
writer cannot make the router buffer without end.

`Expect: 100-continue` is answered here (never forwarded): the upstream's interim answer would
otherwise be taken for its answer, and the next client would receive this one's.
"""

from __future__ import annotations

import asyncio
from collections import deque

import httptools

from activities.infrastructure.local.router.balancer import Router, error_answer
from activities.infrastructure.local.router.request import HOP_BY_HOP, Request
from activities.infrastructure.local.router.table import RouterLimits

# Reading pauses once this many requests, or bytes of their bodies, wait on one connection.
PAUSE_AT_QUEUED = 4
PAUSE_AT_QUEUED_BYTES = 1024 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
FEED_SLICE = 8192
# After a refusal, what the client still sends is read and dropped for this long, so that its
# unread bytes do not make the close a reset that would destroy the answer in flight.
LINGER_SECONDS = 2.0
_NEVER = float("inf")


class Refusal(Exception):
    """Raised from a parser callback: the request is answered with `status`, then we close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests and answers them in order (keep-alive).

    Deadlines are taken from `router.now`, the clock of the sweep, not from a clock read per
    request: a deadline may fall up to one sweep interval early (a quarter of the timeout).
    """

    admin = False  # the admin port's connections answer from the router itself

    def __init__(self, router: Router) -> None:
        self.router = router
        self.limits: RouterLimits = router.table.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Request] = deque()
        self.queued_bytes = 0
        self.worker: asyncio.Task[None] | None = None
        self.peer = b"unknown"
        # The request being received.
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.declared: bytes | None = None  # Content-Length
        self.expect: bytes | None = None
        self.receiving = False
        self.in_head = False
        self.head_bytes = -1  # bytes received for the head; -1: it began in this chunk
        # Flow and time.
        self.deadline = _NEVER
        self.stalled_since = _NEVER  # when writing paused; the client reads no answers
        self.reading = True
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.refused = False
        self.continue_owed = False

    # ------------------------------------------------------------------ transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0]).encode()
        # A client that connects and says nothing has as long as a slow one to say it.
        self.deadline = self.router.now + self.limits.header_timeout_seconds
        self.router.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002
        self.transport = None
        self.router.connections.discard(self)
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True
        self.stalled_since = self.router.now
        self._flow()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.stalled_since = _NEVER
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self._flow()

    def _flow(self) -> None:
        """Read from the client only while there is room for what it sends."""
        transport = self.transport
        if transport is None:
            return
        room = not (
            self.write_paused
            or len(self.queue) >= PAUSE_AT_QUEUED
            or self.queued_bytes >= PAUSE_AT_QUEUED_BYTES
        )
        if room != self.reading:
            self.reading = room
            if room:
                transport.resume_reading()
                if self.receiving:  # the time paused was ours, not the client's
                    limits = self.limits
                    wait = (
                        limits.header_timeout_seconds
                        if self.in_head
                        else limits.body_timeout_seconds
                    )
                    self.deadline = self.router.now + wait
            else:
                transport.pause_reading()

    def data_received(self, data: bytes | memoryview) -> None:
        if len(data) > FEED_SLICE:
            # In slices, so that what the parser holds of an unfinished head is counted to
            # within a slice (below), however much one read brings.
            view = memoryview(data)
            for start in range(0, len(data), FEED_SLICE):
                self.data_received(view[start : start + FEED_SLICE])
            return
        if self.refused:
            return  # the rest of a refused request, or what follows it: never parsed
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:
            refusal = err.__context__
            if not isinstance(refusal, Refusal):
                raise
            self._refuse(refusal.status, refusal.message)
            return
        except httptools.HttpParserUpgrade:
            # Parsed and queued as a plain request: it gets the refusal instead.
            if self.queue and self.queue[-1].answer is None:
                self.queued_bytes -= len(self.queue.pop().body)
            self._refuse(501, "protocol upgrades are not supported")
            return
        except httptools.HttpParserError:
            self._refuse(400, "malformed HTTP request")
            return
        if self.in_head:
            # httptools buffers a header line until it ends: count what it holds, so that one
            # endless line is refused too. A head that began in this slice counts what was
            # parsed of it (the slice may also hold the end of the previous request).
            if self.head_bytes < 0:
                self.head_bytes = self._parsed_head_bytes()
            else:
                self.head_bytes += len(data)
            if len(self.url) > self.limits.max_url_bytes:
                self._refuse(414, f"the URL is longer than {self.limits.max_url_bytes} bytes")
            elif self.head_bytes > self.limits.max_header_bytes:
                self._refuse(431, f"request headers exceed {self.limits.max_header_bytes} bytes")

    def _parsed_head_bytes(self) -> int:
        return len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` after the requests before it, then close; what the client sends
        meanwhile is dropped unparsed."""
        req = Request(b"", b"", [], b"", False, self.peer)
        req.answer = error_answer(status, message)
        self.refused = True
        self.receiving = self.in_head = self.continue_owed = False
        self.deadline = _NEVER  # until the answer is out (see _reply)
        self.queue.append(req)
        self._flow()
        self._start_worker()

    # ------------------------------------------------------------------ httptools callbacks
    # On the hot path: a request whose head arrives whole costs no count beyond these.

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []
        self.body_size = 0
        self.declared = self.expect = None
        self.receiving = self.in_head = True
        self.head_bytes = -1
        self.deadline = self.router.now + self.limits.header_timeout_seconds

    def on_url(self, url: bytes) -> None:
        self.url += url  # its length is checked with the head's (data_received, _check_head)

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self.headers.append((name, value))
        if name == b"content-length":
            self.declared = value
        elif name == b"expect":
            self.expect = value

    def on_headers_complete(self) -> None:
        self.in_head = False
        limits = self.limits
        if (
            len(self.headers) > limits.max_headers
            or len(self.url) > limits.max_url_bytes
            or self.declared is not None
            or self.expect is not None
            or limits.max_header_bytes < FEED_SLICE  # below a slice: count every head
        ):
            self._check_head(limits)
        self.deadline = self.router.now + limits.body_timeout_seconds

    def _check_head(self, limits: RouterLimits) -> None:
        if len(self.url) > limits.max_url_bytes:
            raise Refusal(414, f"the URL is longer than {limits.max_url_bytes} bytes")
        if (
            len(self.headers) > limits.max_headers
            or self._parsed_head_bytes() > limits.max_header_bytes
        ):
            raise Refusal(
                431,
                f"at most {limits.max_headers} headers of {limits.max_header_bytes} bytes in all",
            )
        if self.declared is not None and int(self.declared) > limits.max_body_bytes:
            raise Refusal(413, f"the body is larger than {limits.max_body_bytes} bytes")
        if self.expect is not None:
            if self.expect.lower() != b"100-continue":
                raise Refusal(417, "only Expect: 100-continue is understood")
            # Interim answers go out in order too: after the answers still owed.
            if self.queue or (self.worker is not None and not self.worker.done()):
                self.continue_owed = True
            elif self.transport is not None:
                self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.limits.max_body_bytes:
            raise Refusal(413, f"the body is larger than {self.limits.max_body_bytes} bytes")
        self.body.append(body)
        self.deadline = self.router.now + self.limits.body_timeout_seconds

    def on_message_complete(self) -> None:
        self.receiving = False
        self.continue_owed = False
        self.deadline = _NEVER  # answering now: the upstream's timeout applies
        queue = self.queue
        if len(queue) >= self.limits.max_pipelined:
            raise Refusal(503, f"more than {self.limits.max_pipelined} requests queued")
        body = b"".join(self.body)
        queue.append(
            Request(
                self.parser.get_method(),
                self.url,
                self.headers,
                body,
                self.parser.should_keep_alive(),
                self.peer,
            )
        )
        if body:
            self.queued_bytes += len(body)
        if len(queue) >= PAUSE_AT_QUEUED or self.queued_bytes >= PAUSE_AT_QUEUED_BYTES:
            self._flow()
        self._start_worker()

    # ------------------------------------------------------------------ answering

    def _start_worker(self) -> None:
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        router = self.router
        while self.queue and self.transport is not None:
            if self.write_paused:
                self.drained = asyncio.get_running_loop().create_future()
                await self.drained
                continue
            req = self.queue.popleft()
            if req.body:
                self.queued_bytes -= len(req.body)
            if not self.reading:
                self._flow()
            if req.answer is not None:
                answer = req.answer
            elif self.admin:
                answer = router.own(req.url)
            else:
                router.in_flight += 1
                try:
                    answer = await router.forward(req)
                finally:
                    router.in_flight -= 1
            self._reply(*answer, keep_alive=req.keep_alive)
            if self.continue_owed and not self.queue and self.transport is not None:
                self.continue_owed = False
                self.transport.write(CONTINUE)
        if not self.receiving and not self.refused and self.transport is not None:
            self.deadline = router.now + self.limits.idle_timeout_seconds

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
            if self.refused and self.transport.can_write_eof():
                # Half-close, keep reading (and dropping) what the client still sends.
                self.transport.write_eof()
                self.deadline = self.router.now + LINGER_SECONDS
                return
            self.transport.close()
            self.transport = None

    # ------------------------------------------------------------------ deadlines

    def expired(self, now: float) -> bool:
        """Whether a deadline of this connection has passed (asked by the sweep)."""
        # While reading is paused, the wait is the router's doing: only a stall counts.
        return ((self.reading or self.refused) and now > self.deadline) or (
            now - self.stalled_since > self.limits.idle_timeout_seconds
        )

    def time_out(self, now: float) -> None:
        """Close a connection whose client is too slow, idle too long, or reads nothing."""
        transport = self.transport
        if transport is None:
            return
        if now - self.stalled_since > self.limits.idle_timeout_seconds:
            transport.abort()  # what it has not read would never leave the buffer
            return
        busy = self.queue or (self.worker is not None and not self.worker.done())
        if self.receiving and not busy:
            self._reply(*error_answer(408, "request not received in time"), keep_alive=False)
        else:
            transport.close()
        self.deadline = _NEVER


class AdminConnection(ClientConnection):
    """A connection to the admin port (127.0.0.1 only): the router's own status and metrics."""

    admin = True


_REASONS = {
    200: b"OK", 201: b"Created", 202: b"Accepted", 204: b"No Content", 301: b"Moved Permanently",
    302: b"Found", 304: b"Not Modified", 400: b"Bad Request", 401: b"Unauthorized",
    403: b"Forbidden", 404: b"Not Found", 408: b"Request Timeout", 409: b"Conflict",
    413: b"Content Too Large", 414: b"URI Too Long", 417: b"Expectation Failed",
    422: b"Unprocessable Entity", 429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout",
}  # fmt: skip
