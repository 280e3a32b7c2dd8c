"""Benchmark: what a release costs over the deployments it is made of.

    python -m benchmarks.bench_releases [--n 10] [--rounds 2] [--no-encryption]

Two comparisons of N no-op components, each in the same run, in ABBA order (baseline, release,
release, baseline, ...), so the drift of the dev server cancels out of the ratio:

1. **one wave**: N components without dependencies. Baseline: N independent deployments,
   `POST /api/v1/deployments` all at once, each awaited. Subject: one release of the same N
   components (`POST /api/v1/releases`): one wave of N child deployments.
2. **a chain**: N components, each depending on the one before. Baseline: N deployments one
   after the other, each awaited before the next. Subject: one release of the chain: N waves
   of one child each.

Each figure is the wall time from the first request until every deployment (or the release)
has ended, awaited on its workflow's result. The API runs in this process (its ASGI app, no
network); the worker is a separate process running every real workflow and activity on the
NO-OP infrastructure provider (tests/noop_provider.py, a fake named as such: starting real
processes would measure process start-ups, not orchestration), against its own tuned Temporal
dev server and SQLite store in a temporary directory. Every deployment is the default rolling
strategy of one replica. `measure()` is also run by tests/integration/test_bench_releases.py
at a tiny N against the test's own system.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from core.ids import deployment_workflow_id
from core.models.releases import release_workflow_id

ENVIRONMENT = "bench"
API = "/api/v1"
Auth = dict[str, str]


@dataclass(frozen=True)
class Figure:
    """One comparison: the median wall time of the baseline and of the release."""

    name: str
    n: int
    baseline_s: list[float]
    release_s: list[float]

    @property
    def baseline(self) -> float:
        return statistics.median(self.baseline_s)

    @property
    def release(self) -> float:
        return statistics.median(self.release_s)

    @property
    def ratio(self) -> float:
        return self.release / self.baseline

    @property
    def per_component_ms(self) -> float:
        """What the release adds per component, in milliseconds."""
        return (self.release - self.baseline) * 1000 / self.n

    def line(self) -> str:
        spread = (
            f"baseline {min(self.baseline_s):.2f}..{max(self.baseline_s):.2f} s, "
            f"release {min(self.release_s):.2f}..{max(self.release_s):.2f} s"
        )
        return (
            f"{self.name}, N={self.n}: baseline {self.baseline:.2f} s, release "
            f"{self.release:.2f} s, ratio {self.ratio:.2f}, overhead per component "
            f"{self.per_component_ms:+.0f} ms ({len(self.release_s)} runs each; {spread})"
        )


class Bench:
    """Drives the API (an httpx client, e.g. on its ASGI app) and awaits workflows on Temporal."""

    def __init__(self, http: httpx.AsyncClient, auth: Auth, client: Client, prefix: str) -> None:
        self.http, self.auth, self.client, self.prefix = http, auth, client, prefix
        self._version = 0

    def names(self, kind: str, n: int) -> list[str]:
        return [f"{self.prefix}{kind}{i}" for i in range(n)]

    def version(self) -> str:
        self._version += 1
        return f"v{self._version}"

    async def register(self, names: list[str], chain: bool) -> None:
        for i, name in enumerate(names):
            spec: dict[str, Any] = {
                "name": name,
                "runtime": {"command": ["noop", "{port}"], "replicas": 1},
            }
            if chain and i:
                spec["depends_on"] = [{"component": names[i - 1]}]
            resp = await self.http.post(f"{API}/components", json=spec, headers=self.auth)
            _expect(resp, 201)

    async def deploy(self, name: str, version: str) -> None:
        body = {"component": name, "environment": ENVIRONMENT, "version": version}
        resp = await self.http.post(f"{API}/deployments", json=body, headers=self.auth)
        _expect(resp, 202)
        handle = self.client.get_workflow_handle(deployment_workflow_id(name, ENVIRONMENT))
        await handle.result()
        got = await self.http.get(f"{API}/deployments/{resp.json()['id']}", headers=self.auth)
        if got.json()["state"] != "succeeded":
            raise RuntimeError(f"deployment of {name} ended {got.json()['state']}")

    async def parallel(self, names: list[str]) -> None:
        version = self.version()
        await asyncio.gather(*(self.deploy(name, version) for name in names))

    async def sequential(self, names: list[str]) -> None:
        version = self.version()
        for name in names:
            await self.deploy(name, version)

    async def release(self, names: list[str]) -> None:
        version = self.version()
        body = {"environment": ENVIRONMENT, "components": dict.fromkeys(names, version)}
        resp = await self.http.post(f"{API}/releases", json=body, headers=self.auth)
        _expect(resp, 202)
        release_id = resp.json()["id"]
        await self.client.get_workflow_handle(release_workflow_id(release_id)).result()
        got = await self.http.get(f"{API}/releases/{release_id}", headers=self.auth)
        if got.json()["state"] != "succeeded":
            raise RuntimeError(f"release {release_id} ended {got.json()['state']}")


def _expect(resp: httpx.Response, status: int) -> None:
    if resp.status_code != status:
        what = f"{resp.request.method} {resp.request.url}"
        raise RuntimeError(f"{what}: {resp.status_code} {resp.text[:500]}")


async def _timed(run: Callable[[], Awaitable[None]]) -> float:
    began = time.perf_counter()
    await run()
    return time.perf_counter() - began


async def _compare(
    name: str,
    n: int,
    rounds: int,
    baseline: Callable[[], Awaitable[None]],
    release: Callable[[], Awaitable[None]],
) -> Figure:
    base_s: list[float] = []
    rel_s: list[float] = []
    for r in range(rounds):
        order = ((baseline, base_s), (release, rel_s))
        for run, into in order if r % 2 == 0 else order[::-1]:
            into.append(await _timed(run))
    return Figure(name, n, base_s, rel_s)


async def measure(
    http: httpx.AsyncClient,
    auth: Auth,
    client: Client,
    n: int,
    rounds: int = 2,
    report: Callable[[str], None] = lambda _: None,
    warmup: bool = True,
) -> list[Figure]:
    """Both comparisons at `n` components, each `rounds` times per path (at least 2 for ABBA);
    components are registered under a fresh prefix, so a shared server is no obstacle.
    `warmup`: first deploy each component and run each path once, unmeasured (the worker's
    and the server's first runs are slower, and a first deployment replaces nothing)."""
    bench = Bench(http, auth, client, f"b{uuid.uuid4().hex[:6]}-")
    wave, chain = bench.names("w", n), bench.names("c", n)
    await bench.register(wave, chain=False)
    await bench.register(chain, chain=True)
    if warmup:
        await bench.parallel(wave)
        await bench.sequential(chain)
        await bench.release(wave)
        await bench.release(chain)
        report(f"warmed up: {2 * n} components deployed, twice each")
    one = await _compare(
        "one wave (N independent deployments at once vs a release of N)",
        n,
        rounds,
        lambda: bench.parallel(wave),
        lambda: bench.release(wave),
    )
    report(one.line())
    waves = await _compare(
        "a chain (N deployments one after another vs a release of N waves)",
        n,
        rounds,
        lambda: bench.sequential(chain),
        lambda: bench.release(chain),
    )
    report(waves.line())
    return [one, waves]


async def _run(args: argparse.Namespace) -> None:
    from api.app import create_app
    from cli.bootstrap import ensure_admin_key
    from core.settings import load_settings
    from core.temporal import connect

    settings = load_settings()
    key_file, _ = await ensure_admin_key(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            auth = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
            client = await connect(settings)
            print(f"N={args.n}, {args.rounds} runs of each path, ABBA", flush=True)
            await measure(http, auth, client, args.n, args.rounds, report=print)


async def _serve_worker() -> None:
    from core.settings import load_settings
    from tests.integration.system import run_noop_worker

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    settings = load_settings()
    await run_noop_worker(settings, stop, settings.home / "worker.ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10, help="components per release (1..50)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each path (ABBA)")
    parser.add_argument("--no-encryption", action="store_true", help="payloads in clear")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_serve_worker())
        return 0
    if not 1 <= args.n <= 50 or args.rounds < 1:
        parser.error("--n is 1..50 (a release's limit), --rounds at least 1")
    from cli.processes import free_port
    from cli.temporal_server import dev_server_argv, wait_until_serving
    from core.db.migrate import upgrade
    from core.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = Settings(temporal_port=port, temporal_ui_port=free_port())
        server = subprocess.Popen(
            dev_server_argv(base, Path(tmp) / "temporal.db", metrics_port=free_port()),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        home = Path(tmp) / "home"
        os.environ.pop("POSTGRES_URL", None)
        os.environ.update(
            TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
            R2C_TASK_QUEUE="bench-releases",
            R2C_HOME=str(home),
            LOG_LEVEL="WARNING",
            R2C_PAYLOAD_ENCRYPTION="false" if args.no_encryption else "true",
        )
        worker: subprocess.Popen[bytes] | None = None
        try:
            asyncio.run(wait_until_serving(None, os.environ["TEMPORAL_ADDRESS"], "default", 30))
            upgrade(Settings())
            argv = [sys.executable, "-m", "benchmarks.bench_releases", "--worker"]
            worker = subprocess.Popen(argv)
            ready, deadline = home / "worker.ready", time.monotonic() + 60
            while not ready.exists():
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("error: the benchmark worker did not start")
                time.sleep(0.1)
            asyncio.run(_run(args))
        finally:
            for proc in (worker, server):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
