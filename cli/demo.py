"""The demo component: a tiny HTTP service whose version can be made slow or failing.

`/` answers JSON with the version (and an `X-Component-Version` header), `/health` answers
200, `/metrics` counts requests by status in Prometheus format. `--error-rate` (or
`DEMO_ERROR_RATE`) fails that share of `/` requests with 500; `--latency-ms` (or
`DEMO_LATENCY_MS`) delays each one, so a bad version can be shown.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
from collections import Counter
from typing import Any

from starlette.types import Receive, Scope, Send


class DemoApp:
    """The demo service as a raw ASGI app (no framework: it sits on the hot path of benchmarks)."""

    def __init__(self, version: str, error_rate: float, latency_ms: float) -> None:
        if not 0 <= error_rate <= 1:
            raise ValueError("error rate must be between 0 and 1")
        self.version = version
        self.error_rate = error_rate
        self.latency = latency_ms / 1000
        self.instance = os.environ.get("R2C_INSTANCE", socket.gethostname())
        self.counts: Counter[int] = Counter()
        self._headers = [
            (b"content-type", b"application/json"),
            (b"x-component-version", version.encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        if path == "/health":
            await self._send(send, 200, {"status": "ok", "version": self.version})
        elif path == "/metrics":
            await self._metrics(send)
        else:
            if self.latency:
                await asyncio.sleep(self.latency)
            failed = self.error_rate > 0 and random.random() < self.error_rate  # noqa: S311
            status = 500 if failed else 200
            self.counts[status] += 1
            body: dict[str, Any] = {"version": self.version, "instance": self.instance}
            if failed:
                body["error"] = "injected failure"
            await self._send(send, status, body)

    async def _send(self, send: Send, status: int, body: dict[str, Any]) -> None:
        await send({"type": "http.response.start", "status": status, "headers": self._headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    async def _metrics(self, send: Send) -> None:
        lines = [
            "# HELP demo_requests_total Requests answered, by status code.",
            "# TYPE demo_requests_total counter",
            *(
                f'demo_requests_total{{version="{self.version}",code="{code}"}} {n}'
                for code, n in sorted(self.counts.items())
            ),
        ]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain; version=0.0.4")],
            }
        )
        await send({"type": "http.response.body", "body": ("\n".join(lines) + "\n").encode()})


def env_float(name: str, given: float | None, default: float) -> float:
    """A command-line value wins over the environment, which wins over the default."""
    if given is not None:
        return given
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
