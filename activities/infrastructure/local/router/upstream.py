"""The router's side towards the instances: keep-alive connections, one request at a time.

A connection goes back to its backend's pool only once it has delivered exactly the answer to
the request it carried; anything it sends when nobody asked (a late interim response, bytes
after the end of a message) would become the answer to the next client's request, so such a
connection is closed instead.
"""

from __future__ import annotations

import asyncio

import httptools

from activities.infrastructure.local.router.table import Backend

UPSTREAM_TIMEOUT = 60.0
MAX_IDLE_PER_BACKEND = 64
_LENGTH_HEADERS = (b"content-length", b"transfer-encoding")


class UpstreamError(Exception):
    """The upstream failed before answering; `sent` tells whether the request left us."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class _Unsolicited(Exception):
    """The upstream began a message nobody asked for."""


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
    """One keep-alive connection to a backend, used by one request at a time.

    Its timeout is not a timer per request: `deadline` is checked by the router's periodic
    sweep (`Router.sweep`), which costs nothing on the hot path.
    """

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
        self.interim = False  # parsing a 1xx answer, which is not the answer
        self.in_body = False  # the final answer's headers are in, its end is not
        self.deadline = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if exc is None and self.in_body and self._close_delimited():
            # HTTP/1.0 style: no length, no chunks; the upstream's close ends the body.
            self.in_body = False
            self.keep_alive = False
            waiter.set_result(None)
            return
        waiter.set_exception(UpstreamError(f"connection closed: {exc or 'by peer'}", sent=True))

    def _close_delimited(self) -> bool:
        return not self.head_request and not any(
            name.lower() in _LENGTH_HEADERS for name, _ in self.headers
        )

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.close()  # bytes nobody asked for: never let them answer the next request
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            self.close()  # a second message after the answer (see on_message_begin)
        except httptools.HttpParserError as err:
            self.close()
            if not waiter.done():
                waiter.set_exception(UpstreamError(f"bad response: {err}", sent=True))

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.waiter is None or self.waiter.done():
            raise _Unsolicited
        self.headers = []
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            # 100 Continue, 102, 103 Early Hints: interim; the final answer follows.
            self.interim = True
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self.in_body = True
        if self.head_request:  # a HEAD answer has no body, whatever Content-Length says
            self.keep_alive = False
            self._done()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.in_body = False
        self._done()

    def _done(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def exchange(self, request: bytes, head: bool, deadline: float) -> None:
        """Send `request`, wait for its final answer (`status`, `headers`, `body`)."""
        assert self.transport is not None
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        self.head_request = head
        self.deadline = deadline
        self.transport.write(request)
        try:
            await waiter
        finally:
            self.waiter = None

    def time_out(self) -> None:
        """Called by the sweep once `deadline` has passed while waiting."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(
                UpstreamError(f"no answer within {UPSTREAM_TIMEOUT:.0f}s", sent=True)
            )
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
