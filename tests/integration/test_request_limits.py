"""What a request costs before authentication, over raw HTTP against a real uvicorn server:
bodies over R2C_MAX_BODY_BYTES are refused as soon as they are known to be too large, and a
request without credentials is refused before its body is read.

Each request sends its headers and only part of its body, or none: an answer that came only
after the whole body would never come, and the read times out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest

from api.app import create_app
from cli.bootstrap import ensure_admin_key
from core.db.migrate import upgrade
from core.settings import Settings
from tests.serving import serving

LIMIT = 256 * 1024
ANSWER_WITHIN = 10.0


@pytest.fixture
async def served(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[int, str]]:
    """The API on a free port (no worker: nothing here reaches Temporal), and an admin key."""
    settings = make_settings(max_body_bytes=LIMIT)
    await asyncio.to_thread(upgrade, settings)
    key_file, _ = await ensure_admin_key(settings)
    async with serving(
        create_app(settings),
        settings.port,
        http="httptools",
        ws="none",
        timeout_graceful_shutdown=2,  # a request still waiting for its body must not hold it
    ):
        yield settings.port, key_file.read_text().strip()


async def _status_and_body(reader: asyncio.StreamReader) -> tuple[int, dict[str, object]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_WITHIN)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), ANSWER_WITHIN)
    return int(lines[0].split()[1]), json.loads(body)


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: api", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_a_declared_length_over_the_limit_is_413_before_any_body(
    served: tuple[int, str],
) -> None:
    port, key = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        _head(
            "/api/v1/components",
            {"Authorization": f"Bearer {key}", "Content-Length": str(10 * 1024**3)},
        )
    )
    await writer.drain()
    status, body = await _status_and_body(reader)
    writer.close()
    assert status == 413
    assert body["error"]["type"] == "PayloadTooLarge"  # type: ignore[index]


async def test_a_chunked_body_is_refused_once_it_streams_past_the_limit(
    served: tuple[int, str],
) -> None:
    port, key = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        _head(
            "/api/v1/components", {"Authorization": f"Bearer {key}", "Transfer-Encoding": "chunked"}
        )
    )
    chunk = b"x" * 65536
    # One chunk past the limit, and never the final empty chunk: the body does not end, so
    # only a server that counts while it streams can answer. (Sending on after that answer
    # would make the closing server reset the connection before the answer is read.)
    for _ in range(LIMIT // len(chunk) + 1):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await writer.drain()
    status, body = await _status_and_body(reader)
    writer.close()
    assert status == 413
    assert str(LIMIT) in body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("credentials", [{}, {"Authorization": "Basic abc"}, {"X-API-Key": " "}])
async def test_a_request_without_credentials_is_401_before_its_body_is_read(
    served: tuple[int, str], credentials: dict[str, str]
) -> None:
    port, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_head("/api/v1/components", {"Content-Length": str(LIMIT - 1), **credentials}))
    await writer.drain()
    status, body = await _status_and_body(reader)
    writer.close()
    assert status == 401
    assert "Authorization: Bearer" in body["error"]["hint"]  # type: ignore[index]
