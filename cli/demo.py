"""The demo component: a tiny HTTP service whose version can be made slow or failing.

`/` answers JSON with the version (and an `X-Component-Version` header), `/health` answers
200, `/metrics` counts requests by status in Prometheus format. `--error-rate` (or
`DEMO_ERROR_RATE`) fails that share of `/` requests with 500; `--latency-ms` (or
`DEMO_LATENCY_MS`) delays each one, so a bad version can be shown. `--latency-jitter-ms` (or
`DEMO_LATENCY_JITTER_MS`) makes that delay vary like a real service's: each request waits a
lognormal draw whose mean is the latency and whose standard deviation is the jitter (right
skewed, never negative), so two identical versions differ only by noise, as a statistical
judge needs them to. Failures are drawn independently per request, so small rates (0.01) come
out right on average: 1 in 100, not every hundredth.

With an upstream (`--upstream-url`, or `--upstream-env API_URL` naming the variable that holds
it, such as the `<NAME>_URL` the local provider sets for each dependency, or
`DEMO_UPSTREAM_URL`), each `/` request first calls the upstream's `/` (at most
`UPSTREAM_TIMEOUT` seconds, over kept-alive connections) and answers 502 when that call fails
or answers anything but 2xx, naming the upstream's status and version; so `web` calling `api`
through its router shows what `api`'s canary does to `web`'s users.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import socket
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    import httpx

UPSTREAM_TIMEOUT = 2.0
"""Seconds a call to the upstream may take in all (connect, send, answer) before a 502."""


class DemoApp:
    """The demo service as a raw ASGI app (no framework: it sits on the hot path of benchmarks)."""

    def __init__(
        self,
        version: str,
        error_rate: float,
        latency_ms: float,
        upstream: str | None = None,
        latency_jitter_ms: float = 0.0,
    ) -> None:
        if not 0 <= error_rate <= 1:
            raise ValueError("error rate must be between 0 and 1")
        if not 0 <= latency_ms <= 60_000 or not 0 <= latency_jitter_ms <= 60_000:
            raise ValueError("latency and its jitter must be between 0 and 60000 ms")
        if latency_jitter_ms > 0 and latency_ms <= 0:
            raise ValueError("a latency jitter needs a latency (--latency-ms) to vary around")
        if upstream is not None and not upstream.startswith(("http://", "https://")):
            raise ValueError(f"the upstream must be an http(s) URL, got {upstream[:100]!r}")
        self.upstream = upstream.rstrip("/") + "/" if upstream else None
        self._client: httpx.AsyncClient | None = None
        self.version = version
        self.error_rate = error_rate
        self.latency = latency_ms / 1000
        self.lognormal = _lognormal(latency_ms / 1000, latency_jitter_ms / 1000)
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
            await self.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        if path == "/health":
            await self._send(send, 200, {"status": "ok", "version": self.version})
        elif path == "/metrics":
            await self._metrics(send)
        else:
            if self.lognormal is not None:
                await asyncio.sleep(random.lognormvariate(*self.lognormal))  # noqa: S311
            elif self.latency:
                await asyncio.sleep(self.latency)
            failed = self.error_rate > 0 and random.random() < self.error_rate  # noqa: S311
            status = 500 if failed else 200
            body: dict[str, Any] = {"version": self.version, "instance": self.instance}
            if failed:
                body["error"] = "injected failure"
            elif self.upstream is not None:
                status, body["upstream"] = await self._call_upstream()
            self.counts[status] += 1
            await self._send(send, status, body)

    async def aclose(self) -> None:
        """Close the connections to the upstream (at shutdown)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call_upstream(self) -> tuple[int, dict[str, Any]]:
        """(this request's status, what the upstream answered): 502 unless it answered 2xx."""
        import httpx

        assert self.upstream is not None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT)
        try:
            async with asyncio.timeout(UPSTREAM_TIMEOUT):  # httpx's own bounds each phase only
                resp = await self._client.get(self.upstream)
        except (httpx.HTTPError, TimeoutError) as err:
            return 502, {"error": f"upstream unreachable: {type(err).__name__}"}
        seen = {"status": resp.status_code, "version": resp.headers.get("x-component-version")}
        return (200 if resp.is_success else 502), seen

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


def _lognormal(mean: float, std: float) -> tuple[float, float] | None:
    """(mu, sigma) of the lognormal with this mean and standard deviation; None if std is 0."""
    if std <= 0 or mean <= 0:
        return None
    sigma2 = math.log1p((std / mean) ** 2)
    return math.log(mean) - sigma2 / 2, math.sqrt(sigma2)


def resolve_upstream(given: str | None, env_name: str | None) -> str | None:
    """The upstream to call: `--upstream-url`, else the variable `--upstream-env` names (which
    must then be set), else DEMO_UPSTREAM_URL, else none."""
    if given:
        return given
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise ValueError(f"{env_name} (named by --upstream-env) is not set")
        return value
    return os.environ.get("DEMO_UPSTREAM_URL") or None


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
