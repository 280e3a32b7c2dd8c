"""Each client gets its own answer, whatever the upstream says in between: a real router in
front of a real HTTP/1.1 server (the standard library's), driven with raw sockets."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx

from tests.integration.router_fixture import Answer, Reader, get, running_router
from tests.support import wait_for_sync


def echoed(answer: Answer | None) -> dict[str, object]:
    assert answer is not None and answer.status == 200, answer
    body: dict[str, object] = json.loads(answer.body)
    return body


def final(reader: Reader) -> Answer | None:
    """The next final answer, skipping interim (1xx) ones as clients do."""
    while (answer := reader.answer()) is not None and 100 <= answer.status < 200:
        pass
    return answer


def test_expect_100_continue_never_gives_one_client_anothers_answer(tmp_path: Path) -> None:
    """Alice posts 2 KB with `Expect: 100-continue` as curl does (waiting up to 1 s for the
    100, then sending anyway); Bob and Carol then ask on their own connections."""
    with running_router(tmp_path) as router, router.connect() as alice:
        head = (
            b"POST /alice HTTP/1.1\r\nHost: router.test\r\nContent-Length: 2048\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        alice.sendall(head)
        reader = Reader(alice)
        alice.settimeout(1.0)
        try:
            interim = reader.answer()
        except TimeoutError:
            interim = None
        alice.settimeout(5.0)
        alice.sendall(b"a" * 2048)
        alices = final(reader)
        with router.connect() as bob, router.connect() as carol:
            bob.sendall(get("/bob"))
            carol.sendall(get("/carol"))
            bobs, carols = final(Reader(bob)), final(Reader(carol))
        # The router answered the expectation itself, at once, and never passed it on.
        assert interim is not None and interim.status == 100
        alice_echo = echoed(alices)
        assert alice_echo["path"] == "/alice" and alice_echo["body_length"] == 2048
        assert "expect" not in alice_echo["headers"]  # type: ignore[operator]
        assert echoed(bobs)["path"] == "/bob"
        assert echoed(carols)["path"] == "/carol"


def test_interim_answers_of_the_upstream_are_skipped(tmp_path: Path) -> None:
    """`103 Early Hints` before the answer: the client gets the answer, and the connection
    to the upstream goes back to the pool clean (the next request gets its own answer)."""
    with running_router(tmp_path) as router, router.connect() as sock:
        reader = Reader(sock)
        for path in ("/early", "/early", "/next"):
            sock.sendall(get(path))
            answer = reader.answer()
            assert answer is not None and answer.status == 200, answer
            assert echoed(answer)["path"] == path


def test_a_close_delimited_answer_is_complete_and_keeps_the_instance_healthy(
    tmp_path: Path,
) -> None:
    """An HTTP/1.0 answer with no length ends when the upstream closes: that is its end,
    not a failure, so the instance is not ejected."""
    expected = b"".join(b"line %06d\n" % i for i in range(10_000))
    with running_router(tmp_path, admin=True) as router, router.connect() as sock:
        reader = Reader(sock)
        for _ in range(3):
            sock.sendall(get("/close"))
            answer = reader.answer()
            assert answer is not None and answer.status == 200, answer
            assert answer.body == expected
        sock.sendall(get("/after"))
        assert echoed(reader.answer())["path"] == "/after"
        status = httpx.get(f"http://127.0.0.1:{router.admin_port}/status").json()
        assert [b["healthy"] for b in status["backends"]] == [True]


def test_forwarding_headers_of_the_client_are_replaced_by_the_routers(tmp_path: Path) -> None:
    spoofed = "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Real-IP: 6.6.6.6\r\n"
    with running_router(tmp_path) as router, router.connect() as sock:
        sock.sendall(get("/who", host="shop.test", extra=spoofed))
        headers = echoed(Reader(sock).answer())["headers"]
    assert isinstance(headers, dict)
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "shop.test"
    assert "x-real-ip" not in headers


def test_a_trusting_router_appends_the_peer_to_the_chain(tmp_path: Path) -> None:
    with (
        running_router(tmp_path, trust_forwarded=True) as router,
        router.connect() as sock,
    ):
        sock.sendall(get("/who", extra="X-Forwarded-For: 10.1.2.3\r\n"))
        headers = echoed(Reader(sock).answer())["headers"]
    assert isinstance(headers, dict)
    assert headers["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"


def test_bytes_an_upstream_sends_unasked_never_reach_the_next_client(tmp_path: Path) -> None:
    """Many clients, one after another on fresh connections, over pooled upstream
    connections: each answer names the path its own client asked for."""
    with running_router(tmp_path) as router:
        for n in range(30):
            path = f"/client-{n}" if n % 3 else "/early"
            with router.connect() as sock:
                sock.sendall(get(path))
                assert echoed(Reader(sock).answer())["path"] == path


def test_admin_port_is_on_loopback_only(tmp_path: Path) -> None:
    with running_router(tmp_path, admin=True) as router:
        assert router.admin_port is not None
        assert httpx.get(f"http://127.0.0.1:{router.admin_port}/status").status_code == 200

        def refused_elsewhere() -> bool:
            try:
                socket.create_connection(("127.0.0.2", router.admin_port), 1).close()
            except ConnectionRefusedError:
                return True
            return False

        assert wait_for_sync(refused_elsewhere, within=2)
