"""No client can hold the router's memory or connections: a real router with small limits in
front of a real upstream, driven with raw sockets."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import httpx

from tests.integration.router_fixture import Answer, Reader, get, running_router
from tests.support import wait_for_sync


def refused_with(reader: Reader) -> Answer:
    """The router's answer, after which it closes the connection."""
    answer = reader.answer()
    assert answer is not None
    assert answer.headers.get("connection") == "close"
    assert reader.closed()
    return answer


def test_a_url_over_the_limit_is_refused_with_414(tmp_path: Path) -> None:
    with running_router(tmp_path, max_url_bytes=1024) as router, router.connect() as sock:
        sock.sendall(get("/" + "a" * 2000))
        assert refused_with(Reader(sock)).status == 414


def test_too_many_headers_are_refused_with_431(tmp_path: Path) -> None:
    with running_router(tmp_path, max_headers=10) as router, router.connect() as sock:
        sock.sendall(get("/", extra="".join(f"X-H{i}: v\r\n" for i in range(20))))
        assert refused_with(Reader(sock)).status == 431


def test_an_endless_header_line_is_refused_before_it_ends(tmp_path: Path) -> None:
    """The parser buffers a header line until its end: a line that never ends must be
    refused from its size alone."""
    with running_router(tmp_path, max_header_bytes=4096) as router, router.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(64):  # as long as the router reads
                sock.sendall(b"a" * 1000)
        assert refused_with(Reader(sock)).status == 431


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    with running_router(tmp_path, max_body_bytes=1000) as router, router.connect() as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert refused_with(Reader(sock)).status == 413  # and no 100 Continue before it


def test_a_chunked_body_over_the_limit_is_refused(tmp_path: Path) -> None:
    with running_router(tmp_path, max_body_bytes=1000) as router, router.connect() as sock:
        chunk = b"258\r\n" + b"b" * 600 + b"\r\n"
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(chunk + chunk)
        assert refused_with(Reader(sock)).status == 413
        # The upstream never saw it.
        with socket.create_connection(("127.0.0.1", router.upstream_port), 5) as direct:
            direct.sendall(get("/count"))
            counted = Reader(direct).answer()
        assert counted is not None and counted.body == b"0"


def _closed_within(sock: socket.socket, trickle: bytes | None, within: float) -> float:
    """Seconds until the router closes `sock`, sending `trickle` every 0.1 s meanwhile."""
    started = time.monotonic()
    sock.settimeout(0.1)
    seen = b""
    while time.monotonic() - started < within:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if trickle is not None:
                sock.sendall(trickle)
            continue
        except ConnectionResetError:
            return time.monotonic() - started
        if not chunk:
            return time.monotonic() - started
        seen += chunk
    raise AssertionError(f"still open after {within}s; received {seen[:200]!r}")


def test_a_client_trickling_its_headers_is_disconnected(tmp_path: Path) -> None:
    """Slowloris: a header line every 0.1 s keeps every byte-level timeout happy; only a
    deadline for the whole head ends it."""
    with (
        running_router(tmp_path, header_timeout_seconds=0.5) as router,
        router.connect() as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert _closed_within(sock, b"X-Slow: 1\r\n", within=5) < 3


def test_a_client_that_never_speaks_is_disconnected(tmp_path: Path) -> None:
    with (
        running_router(tmp_path, header_timeout_seconds=0.5) as router,
        router.connect() as sock,
    ):
        assert _closed_within(sock, None, within=5) < 3


def test_a_client_trickling_nothing_of_its_body_is_disconnected(tmp_path: Path) -> None:
    with (
        running_router(tmp_path, body_timeout_seconds=0.5) as router,
        router.connect() as sock,
    ):
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        assert _closed_within(sock, None, within=5) < 3


def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    with (
        running_router(tmp_path, idle_timeout_seconds=0.5) as router,
        router.connect() as sock,
    ):
        reader = Reader(sock)
        sock.sendall(get("/once"))
        answer = reader.answer()
        assert answer is not None and answer.status == 200
        assert answer.headers.get("connection") != "close"
        assert _closed_within(sock, None, within=5) < 3


def test_pipelined_requests_beyond_the_bound_are_refused(tmp_path: Path) -> None:
    with running_router(tmp_path, max_pipelined=8) as router, router.connect() as sock:
        sock.sendall(b"".join(get(f"/p{n}") for n in range(20)))  # one segment: parsed at once
        reader = Reader(sock)
        answers = []
        while (answer := reader.answer()) is not None:
            answers.append(answer)
    assert [a.status for a in answers] == [200] * 8 + [503]
    assert [a.body.count(f'"/p{n}"'.encode()) for n, a in enumerate(answers[:8])] == [1] * 8


def test_a_client_that_reads_no_answers_stops_being_read(tmp_path: Path) -> None:
    """Back-pressure: pipelined requests for 1 MiB answers, none of them read. The router
    stops reading this client once its answers pile up, instead of forwarding every request
    and buffering every answer; other clients are served meanwhile."""
    sent = 64
    with (
        running_router(tmp_path, idle_timeout_seconds=30) as router,
        router.connect() as hog,
    ):
        for _ in range(sent):
            hog.sendall(get("/big?n=1048576"))

        def served() -> int:
            with socket.create_connection(("127.0.0.1", router.upstream_port), 5) as direct:
                direct.sendall(get("/count"))
                answer = Reader(direct).answer()
            assert answer is not None
            return int(answer.body)

        counts: list[int] = []

        def settled() -> bool:
            counts.append(served())
            return len(counts) >= 5 and counts[-1] == counts[-5] > 0

        wait_for_sync(settled, within=20, every=0.1, what="the router to stop forwarding")
        assert counts[-1] <= sent // 2, counts
        answer = httpx.get(f"http://127.0.0.1:{router.port}/other", timeout=5)
        assert answer.status_code == 200 and answer.json()["path"] == "/other"
