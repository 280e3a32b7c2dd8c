"""Reading an HTTP body from a server we do not control, with a bound on its size."""

from __future__ import annotations

import httpx


async def read_at_most(resp: httpx.Response, limit: int) -> bytes | None:
    """The streamed body of `resp`, or None as soon as it passes `limit` bytes (the rest is
    never read, so a huge or endless answer costs at most `limit` bytes of memory)."""
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
