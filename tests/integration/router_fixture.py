"""A real router process in front of a real upstream process, and a raw HTTP/1.1 client.

The client is a plain socket with a hand-written reader, so a test sees exactly the bytes the
router sends: interim answers, pipelined answers in order, a close, a reset.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.infrastructure.local.router.table import (
    Backend,
    HealthPolicy,
    RouterLimits,
    RouteTable,
    write_table,
)
from cli.processes import free_port
from tests.support import stop_processes, wait_for_sync

UPSTREAM = Path(__file__).with_name("echo_upstream.py")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class RouterUnderTest:
    port: int
    admin_port: int | None
    upstream_port: int

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Reader:
    """Reads HTTP/1.1 answers one by one from a socket (Content-Length bodies only)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def answer(self) -> Answer | None:
        """The next answer; None if the router closed the connection before one began."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                if self.buffer:
                    raise AssertionError(f"connection closed mid-answer: {self.buffer[:200]!r}")
                return None
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            if not self._fill():
                raise AssertionError("connection closed mid-body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def closed(self) -> bool:
        """True once the peer has closed (EOF or reset) with nothing more to read."""
        try:
            return not self._fill()
        except ConnectionResetError:
            return True


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    def listening() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        return False

    wait_for_sync(listening, what=f"port {port} listening", within=30)


def write_one_backend_table(
    path: Path, component: str, port: int, environment: str = "test", **fields: Any
) -> None:
    """A routing table that sends everything to one v1 instance on `port` (slot `stable`)."""
    write_table(
        path,
        RouteTable(
            component=component,
            environment=environment,
            generation=1,
            weights={"stable": 100},
            backends=[
                Backend(instance_id=f"{component}-1", port=port, version="v1", slot="stable")
            ],
            **fields,
        ),
    )


@contextlib.contextmanager
def running_router(tmp: Path, *, admin: bool = False, **limits: Any) -> Iterator[RouterUnderTest]:
    """The echo upstream behind a router that follows a table with these `limits`."""
    upstream_port, port = free_port(), free_port()
    admin_port = free_port() if admin else None
    table = tmp / "routes.json"
    write_one_backend_table(
        table,
        "echo",
        upstream_port,
        health=HealthPolicy(interval_seconds=0.5, unhealthy_threshold=2),
        limits=RouterLimits(**limits),
    )
    argv = [sys.executable, "-m", "cli", "router", "--table", str(table), "--port", str(port)]
    if admin_port is not None:
        argv += ["--admin-port", str(admin_port)]
    with (tmp / "router.log").open("wb") as log:
        procs = [
            subprocess.Popen([sys.executable, str(UPSTREAM), str(upstream_port)],
                             stdout=subprocess.DEVNULL, cwd=REPO),
            subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO),
        ]  # fmt: skip
    try:
        _wait_listening(upstream_port, procs[0])
        _wait_listening(port, procs[1])
        yield RouterUnderTest(port, admin_port, upstream_port)
    finally:
        stop_processes(procs)


def get(path: str, host: str = "router.test", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
