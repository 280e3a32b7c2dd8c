"""Benchmark: what watchers of one deployment cost Temporal, over server-sent events.

    python -m benchmarks.bench_live_fanout [--watchers 100] [--seconds 10] [--poll-ms 500]

One canary deployment is held paused (a pause without a duration: it waits for promote), so
its workflow runs and every read of its state is a Temporal query. Three phases of
`--seconds` each, counting the Temporal queries the API process makes (its gateway's `query`
wrapped with a counter) and the live pollers' reads (`r2c_live_polls_total`):

1. **1 watcher**: one stream of `GET /api/v1/deployments/{id}/events`.
2. **N watchers**: `--watchers` streams of the same deployment.
3. **N pollers** (the baseline the streams replace): `--watchers` clients each polling
   `GET /api/v1/deployments/{id}` every `--poll-ms`, the way a CLI or page without streams
   would.

Then the deployment is promoted with the N streams open, and the time from the promote until
every stream has its `end` event is measured (the fan-out's delivery time).

The API runs in this process on a real port (uvicorn: streams need a real server), with the
clients; the worker is a separate process running every real workflow and activity on the
NO-OP infrastructure provider (tests/noop_provider.py, a fake named as such), against its own
tuned Temporal dev server and SQLite store in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import REGISTRY

API = "/api/v1"
ENVIRONMENT = "bench"
COMPONENT = "live-bench"


@dataclass(frozen=True)
class Phase:
    name: str
    clients: int
    seconds: float
    queries: int  # Temporal queries the API process made
    polls: int  # reads by the live pollers

    def line(self) -> str:
        return (
            f"{self.name}: {self.clients} client(s), {self.seconds:.1f} s: "
            f"{self.queries / self.seconds:.2f} Temporal queries/s "
            f"({self.queries} queries; live poller reads {self.polls})"
        )


class QueryCounter:
    """Counts the Temporal queries of a gateway, by wrapping its `query`."""

    def __init__(self, gateway: Any) -> None:
        self.count = 0
        original = gateway.query

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(*args, **kwargs)

        setattr(gateway, "query", counted)  # noqa: B010 - an instance attribute over the method


def live_polls() -> int:
    return int(REGISTRY.get_sample_value("r2c_live_polls_total", {"kind": "deployment"}) or 0)


class Stream:
    """One watcher: counts its events, notes when `end` came."""

    def __init__(self, http: httpx.AsyncClient, url: str, auth: dict[str, str]) -> None:
        self.events = 0
        self.ended_at: float | None = None
        self.task = asyncio.create_task(self._run(http, url, auth))

    async def _run(self, http: httpx.AsyncClient, url: str, auth: dict[str, str]) -> None:
        async with http.stream("GET", url, headers=auth) as resp:
            if resp.status_code != 200:
                raise RuntimeError(f"stream: {resp.status_code} {(await resp.aread())[:300]!r}")
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    self.events += 1
                    if line == "event: end":
                        self.ended_at = time.perf_counter()


async def _until(check: Callable[[], bool], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _expect(resp: httpx.Response, *statuses: int) -> dict[str, Any]:
    if resp.status_code not in statuses:
        raise RuntimeError(f"{resp.request.method} {resp.request.url}: {resp.status_code} "
                           f"{resp.text[:500]}")  # fmt: skip
    body: dict[str, Any] = resp.json()
    return body


async def _state(http: httpx.AsyncClient, auth: dict[str, str], deployment_id: str) -> str:
    got = await _expect(await http.get(f"{API}/deployments/{deployment_id}", headers=auth), 200)
    return str(got["state"])


async def _deploy(
    http: httpx.AsyncClient, auth: dict[str, str], version: str, until: tuple[str, ...], **kw: Any
) -> str:
    body = {"component": COMPONENT, "environment": ENVIRONMENT, "version": version, **kw}
    made = await _expect(await http.post(f"{API}/deployments", json=body, headers=auth), 202)
    deadline = time.monotonic() + 60
    while (state := await _state(http, auth, made["id"])) not in until:
        if time.monotonic() > deadline:
            raise RuntimeError(f"deployment {made['id']} is {state}, not {until}")
        await asyncio.sleep(0.1)
    return str(made["id"])


async def measure(
    base_url: str,
    auth: dict[str, str],
    counter: QueryCounter,
    *,
    watchers: int,
    seconds: float,
    poll_ms: int,
    report: Callable[[str], None] = print,
) -> tuple[list[Phase], float]:
    """The three phases, then the delivery time of the end to every watcher (seconds)."""
    limits = httpx.Limits(max_connections=2 * watchers + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        spec = {"name": COMPONENT, "runtime": {"command": ["noop", "{port}"], "replicas": 1}}
        await _expect(await http.post(f"{API}/components", json=spec, headers=auth), 201, 409)
        await _deploy(http, auth, "v1", ("succeeded",))
        canary = {"type": "canary", "steps": [{"set_weight": 20}, {"pause": {}}]}
        deployment_id = await _deploy(http, auth, "v2", ("paused",), strategy=canary)
        url = f"{API}/deployments/{deployment_id}/events"

        async def phase(name: str, clients: int, run: Callable[[], Any]) -> Phase:
            queries, polls, began = counter.count, live_polls(), time.perf_counter()
            await run()
            elapsed = time.perf_counter() - began
            got = Phase(name, clients, elapsed, counter.count - queries, live_polls() - polls)
            report(got.line())
            return got

        async def watch(streams: list[Stream]) -> None:
            # Counted from when every stream has its first snapshot: steady state.
            await _until(lambda: all(s.events for s in streams), "every stream's snapshot")
            await asyncio.sleep(seconds)

        one = [Stream(http, url, auth)]
        await _until(lambda: all(s.events for s in one), "the first stream's snapshot")
        phases = [await phase("1 watcher", 1, lambda: watch(one))]
        one[0].task.cancel()
        many = [Stream(http, url, auth) for _ in range(watchers)]
        await _until(lambda: all(s.events for s in many), "every stream's snapshot")
        phases.append(await phase(f"{watchers} watchers", watchers, lambda: watch(many)))
        # Nothing changed while it waited for promote: one snapshot each, no repeats.
        report(f"events per stream while paused: {sorted({s.events for s in many})}")

        async def poll_each() -> None:
            stop = time.perf_counter() + seconds

            async def poller() -> None:
                while time.perf_counter() < stop:
                    await _state(http, auth, deployment_id)
                    await asyncio.sleep(poll_ms / 1000)

            await asyncio.gather(*(poller() for _ in range(watchers)))

        phases.append(
            await phase(
                f"{watchers} pollers of GET every {poll_ms} ms (no streams)", watchers, poll_each
            )
        )
        promoted = time.perf_counter()
        await _expect(
            await http.put(
                f"{API}/deployments/{deployment_id}", json={"desired": "promoted"}, headers=auth
            ),
            200,
        )
        await asyncio.wait_for(asyncio.gather(*(s.task for s in many)), 60)
        ends = [s.ended_at for s in many]
        if any(at is None for at in ends):
            raise RuntimeError("a stream closed without its end event")
        delivered = max(at for at in ends if at is not None) - promoted
        report(f"promote to the end event on all {watchers} streams: {delivered:.2f} s")
        return phases, delivered


async def _run(args: argparse.Namespace) -> None:
    import uvicorn

    from api.app import create_app
    from cli.bootstrap import ensure_admin_key
    from core.settings import load_settings

    settings = load_settings()
    key_file, _ = await ensure_admin_key(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=settings.port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await _until(lambda: server.started or serving.done(), "uvicorn to listen")
        if serving.done():
            serving.result()
        auth = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        counter = QueryCounter(app.state.gateway)
        print(
            f"{args.watchers} watchers, {args.seconds} s per phase, "
            f"R2C_LIVE_POLL_MS={settings.live_poll_ms}",
            flush=True,
        )
        await measure(
            f"http://127.0.0.1:{settings.port}",
            auth,
            counter,
            watchers=args.watchers,
            seconds=args.seconds,
            poll_ms=settings.live_poll_ms,
        )
    finally:
        server.should_exit = True
        await serving


async def _serve_worker() -> None:
    from core.settings import load_settings
    from tests.integration.system import run_noop_worker

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    settings = load_settings()
    await run_noop_worker(settings, stop, settings.home / "worker.ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=100, help="streams (and pollers)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase")
    parser.add_argument("--poll-ms", type=int, default=500, help="R2C_LIVE_POLL_MS")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_serve_worker())
        return 0
    if not 1 <= args.watchers <= 1000 or not 1 <= args.seconds <= 600:
        parser.error("--watchers is 1..1000, --seconds 1..600")
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
            R2C_TASK_QUEUE="bench-live",
            R2C_HOME=str(home),
            LOG_LEVEL="WARNING",
            PORT=str(free_port()),
            METRICS_PORT=str(free_port()),
            R2C_LIVE_POLL_MS=str(args.poll_ms),
            R2C_LIVE_MAX_WATCHERS_PER_TARGET=str(max(200, args.watchers)),
        )
        worker: subprocess.Popen[bytes] | None = None
        try:
            asyncio.run(wait_until_serving(None, os.environ["TEMPORAL_ADDRESS"], "default", 30))
            upgrade(Settings())
            argv = [sys.executable, "-m", "benchmarks.bench_live_fanout", "--worker"]
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
