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
from pathlib import Path
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


def demo_spec(name: str, replicas: int) -> dict[str, Any]:
    """The demo component's definition: `r2c demo serve`, health on /health, two replicas."""
    return {
        "name": name,
        "description": "The demo component shipped with readme-to-cicd orchestration",
        "owner": "platform",
        "labels": {"demo": "true"},
        "runtime": {
            "command": ["r2c", "demo", "serve", "--port", "{port}", "--version", "{version}"],
            "health_check": {
                "path": "/health",
                "interval_seconds": 2,
                "timeout_seconds": 1,
                "unhealthy_threshold": 2,
            },
            "metrics_path": "/metrics",
            "replicas": replicas,
        },
    }


def register(api_url: str, key_file: Path, name: str, replicas: int) -> int:
    """POST the demo component; an existing one with that name is left as it is. An https
    API is verified with R2C_CA_FILE (what `r2c up --tls` prints), else the system's CAs."""
    import httpx

    from cli.api_client import ConfigError, verify

    try:
        key = key_file.read_text().strip()
        trust = verify()
    except OSError as err:
        print(f"error: cannot read the admin key from {key_file}: {err.strerror}")
        return 1
    except ConfigError as err:
        print(f"error: {err}")
        return 1
    try:
        resp = httpx.post(
            f"{api_url.rstrip('/')}/api/v1/components",
            json=demo_spec(name, replicas),
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
            verify=trust,
        )
    except httpx.HTTPError as err:
        print(f"error: the API at {api_url} did not answer ({err}); is `r2c up` running?")
        return 1
    if resp.status_code == 409:
        print(f"component {name!r} is already registered")
        return 0
    if resp.status_code != 201:
        print(f"error: HTTP {resp.status_code}: {resp.text}")
        return 1
    print(f"registered component {name!r} (id {resp.json()['id']})")
    return 0
