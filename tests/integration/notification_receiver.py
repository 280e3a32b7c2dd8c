"""A real HTTP receiver of notifications for the tests, on a free port: it records every
request (path, headers, body, when, what it answered) and refuses with 503 while told to."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

MAX_BODY = 1_000_000


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


@dataclass
class Receiver:
    """`refuse_until`: a time.monotonic() before which every request gets a 503."""

    port: int = 0
    refuse_until: float = 0.0
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accepted(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path and r.status == 200]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            length = min(int(headers.get("content-length", "0")), MAX_BODY)
            body = await reader.readexactly(length)
            status = 503 if time.monotonic() < self.refuse_until else 200
            self.requests.append(Received(path, headers, body, time.monotonic(), status))
            answer = b"down for maintenance" if status == 503 else b"ok"
            reason = b"Service Unavailable" if status == 503 else b"OK"
            writer.write(
                b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (status, reason, len(answer), answer)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError, ValueError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver listening on 127.0.0.1 until the block ends."""
    got = Receiver()
    server = await asyncio.start_server(got._serve, "127.0.0.1", 0)
    got.port = server.sockets[0].getsockname()[1]
    async with server:
        yield got
