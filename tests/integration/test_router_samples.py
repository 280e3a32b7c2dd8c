"""The router's `/samples`: a real router in front of two real demo versions at 80/20 keeps
exact counts per version and window, and latencies near each version's configured delay."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx

from activities.analysis.router_samples import fetch, fetch_merged
from activities.infrastructure.local.router.samples import BUCKET_SECONDS_ENV
from activities.infrastructure.local.router.table import (
    Backend,
    HealthPolicy,
    RouteTable,
    write_table,
)
from cli.processes import free_port
from tests.support import stop_processes, wait_for, wait_for_sync

REPO = Path(__file__).resolve().parents[2]
DEMO = """import sys, uvicorn
from cli.demo import DemoApp
port, version, latency, jitter, errors = sys.argv[1:]
app = DemoApp(version, float(errors), float(latency), latency_jitter_ms=float(jitter))
uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning", http="httptools")
"""
ROUTER = """import asyncio, sys
from pathlib import Path
from activities.infrastructure.local.router.main import run_router
table, port, admin = sys.argv[1:]
sys.exit(asyncio.run(run_router(Path(table), "127.0.0.1", int(port), int(admin))))
"""


def _table(path: Path, ports: dict[str, int], canary: int, generation: int) -> None:
    write_table(
        path,
        RouteTable(
            component="demo",
            environment="test",
            generation=generation,
            weights={"stable": 100 - canary, "canary": canary},
            backends=[
                Backend(instance_id="demo-v1", port=ports["v1"], version="v1", slot="stable"),
                Backend(instance_id="demo-v2", port=ports["v2"], version="v2", slot="canary"),
            ],
            health=HealthPolicy(interval_seconds=0.5),
        ),
    )


@contextlib.contextmanager
def two_versions(
    tmp: Path,
    v1: tuple[float, float, float] = (20, 0, 0),
    v2: tuple[float, float, float] = (40, 5, 0.1),
    canary: int = 0,
) -> Iterator[tuple[str, str, Path, dict[str, int]]]:
    """v1 and v2 (latency ms, jitter ms, error rate: by default 20 ms, and 40 ms +- 5 ms with
    10% errors) behind a router with 1 s buckets, `canary`% to v2."""
    ports = {"v1": free_port(), "v2": free_port()}
    port, admin = free_port(), free_port()
    table = tmp / "routes.json"
    _table(table, ports, canary=canary, generation=1)
    # The demo app and the router run as `r2c demo serve` and `r2c router` do, without the
    # CLI's imports (seconds on a loaded machine).
    argv = [
        [sys.executable, "-c", DEMO, str(ports[v]), v, *(f"{n:g}" for n in shape)]
        for v, shape in (("v1", v1), ("v2", v2))
    ]
    argv.append([sys.executable, "-c", ROUTER, str(table), str(port), str(admin)])
    env = {**os.environ, BUCKET_SECONDS_ENV: "1"}
    with (tmp / "processes.log").open("wb") as log:
        procs = [
            subprocess.Popen(a, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
            for a in argv
        ]
    try:
        for p, proc in zip([*ports.values(), port, admin], [*procs, procs[-1]], strict=True):
            wait_for_sync(lambda p=p, proc=proc: _listening(p, proc), what=f"port {p}", within=30)  # type: ignore[misc]
        yield f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{admin}", table, ports
    finally:
        stop_processes(procs)


def _listening(port: int, proc: subprocess.Popen[bytes]) -> bool:
    import socket

    if proc.poll() is not None:
        raise AssertionError(f"{proc.args!r} exited with {proc.returncode}")
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


async def _send(http: httpx.AsyncClient, url: str, n: int) -> Counter[tuple[str, int]]:
    """`n` GETs, 10 at a time; (version, status) of each answer as the client saw it."""
    seen: Counter[tuple[str, int]] = Counter()
    queue = iter(range(n))

    async def client() -> None:
        for _ in queue:
            resp = await http.get(url)
            seen[(resp.headers["x-component-version"], resp.status_code)] += 1

    await asyncio.gather(*(client() for _ in range(10)))
    return seen


async def test_samples_count_each_version_exactly_with_latencies_near_its_delay(
    tmp_path: Path,
) -> None:
    with two_versions(tmp_path) as (url, admin, table, ports):
        async with httpx.AsyncClient(timeout=10) as http:
            started = math.floor(time.time())
            before = await _send(http, url, 40)  # v1 only
            assert set(before) == {("v1", 200)}
            # The canary starts in a bucket of its own: the next whole second.
            boundary = math.ceil(time.time())
            wait_for_sync(lambda: time.time() >= boundary, what="the next bucket", within=2)
            _table(table, ports, canary=20, generation=2)
            await wait_for(
                lambda: http.get(admin + "/status"),
                lambda r: r.json()["generation"] == 2,
                what="the 80/20 table applied",
            )
            during = await _send(http, url, 250)
            until = time.time() + 1

            versions = Counter[str]()
            for (version, _), n in during.items():
                versions[version] += n
            assert versions["v1"] + versions["v2"] == 250
            assert 0.15 <= versions["v2"] / 250 <= 0.25, versions

            # Before the canary existed: v1's requests, nothing of v2.
            early_v1 = await fetch_merged(http, admin, "v1", started, boundary)
            early_v2 = await fetch(http, admin, "v2", started, boundary)
            assert early_v1.requests == 40 and early_v1.errors == 0
            assert early_v2.windows == []

            for version, delay in (("v1", 20.0), ("v2", 40.0)):
                merged = await fetch_merged(http, admin, version, boundary, until)
                assert merged.requests == versions[version]  # exactly what the client got
                assert merged.errors == during[(version, 500)]
                assert len(merged.latencies_ms) == merged.requests  # under the reservoir
                median = statistics.median(merged.latencies_ms)
                assert delay * 0.9 <= median <= delay + 25, (version, median)
            assert during[("v2", 500)] > 0  # the 10% of failures are counted as errors

            bad = await http.get(admin + "/samples?version=v1&since=later")
            assert bad.status_code == 400 and "unix seconds" in bad.json()["error"]["message"]
