"""The lean HTTP/1.1 client the benchmarks drive servers with: raw asyncio streams, requests
built once and sent as bytes, answers read by Content-Length. On 2 shared cores an httpx load
generator costs 3-7 ms of CPU a request and starves the server it measures; this costs ~0.15 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

HOST = "127.0.0.1"


class HttpProtocolError(Exception):
    """The server answered something this lean client does not understand."""


def build_post(port: int, path: str, body: object, api_key: str) -> bytes:
    """The bytes of one POST request, built once and sent as-is on every start."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        f"Authorization: Bearer {api_key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + payload


def parse_head(head: bytes) -> tuple[int, int, bool]:
    """Status code, Content-Length and whether the server will close the connection."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HttpProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    length: int | None = None
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
        elif name == b"transfer-encoding":
            # uvicorn sends Content-Length for JSON answers; anything else is a surprise.
            raise HttpProtocolError("chunked answers are not supported by this client")
    if length is None:
        raise HttpProtocolError("answer without Content-Length")
    return int(parts[1]), length, close


class HttpConnection:
    """One persistent HTTP/1.1 connection: send a request, read status and body, repeat.

    A broken connection is closed and reopened on the next request, so one failure never
    turns into a run of failures.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(HOST, self.port)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            await self.open()
        assert self._reader is not None and self._writer is not None
        try:
            # No drain(): one small request per round trip never fills the send buffer.
            self._writer.write(raw)
            head = await self._reader.readuntil(b"\r\n\r\n")
            status, length, close = parse_head(head)
            body = await self._reader.readexactly(length)
        except Exception:  # the stream's state is unknown now: never reuse it
            await self.close()
            raise
        if close:
            await self.close()
        return status, body
