"""A real Prometheus server for tests, scraping given targets every second.

Debian's `prometheus` package provides the binary (`apt-get install prometheus`); without it
the test is skipped locally and fails in CI (`need`).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cli.processes import free_port
from tests.conftest import need
from tests.support import wait_for

METRICS_PATH = "/metrics"  # on the router's admin port


@dataclass
class PrometheusServer:
    url: str
    log: Path

    async def query(self, http: httpx.AsyncClient, promql: str) -> list[dict[str, Any]]:
        """The raw result of an instant query (for the tests' own waiting)."""
        resp = await http.get(f"{self.url}/api/v1/query", params={"query": promql})
        resp.raise_for_status()
        result: list[dict[str, Any]] = resp.json()["data"]["result"]
        return result


def _config(targets: list[str]) -> str:
    # JSON is YAML; scrape_timeout must not exceed the 1 s interval.
    return json.dumps(
        {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "r2c-router",
                    "metrics_path": METRICS_PATH,
                    "static_configs": [{"targets": targets}],
                }
            ],
        }
    )


async def _ready(http: httpx.AsyncClient, url: str, proc: asyncio.subprocess.Process) -> bool:
    if proc.returncode is not None:
        raise AssertionError(f"prometheus exited with {proc.returncode}")
    try:
        return (await http.get(f"{url}/-/ready")).status_code == 200
    except httpx.HTTPError:
        return False


async def _targets_up(http: httpx.AsyncClient, url: str) -> list[str]:
    active = (await http.get(f"{url}/api/v1/targets")).json()["data"]["activeTargets"]
    return [t["health"] for t in active]


def prometheus_binary() -> str:
    """The Prometheus server's path; skips the test (fails it in CI) when it is missing."""
    binary = shutil.which("prometheus")
    need(binary is not None, "Prometheus is not installed (apt-get install prometheus)")
    assert binary is not None
    return binary


@asynccontextmanager
async def running_prometheus(
    base: Path, targets: list[str], http: httpx.AsyncClient
) -> AsyncIterator[PrometheusServer]:
    """Start Prometheus scraping `targets` (routers' admin host:port); yield once all are up."""
    binary = prometheus_binary()
    base.mkdir(parents=True, exist_ok=True)
    config = base / "prometheus.yml"
    config.write_text(_config(targets))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = base / "prometheus.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={base / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        try:
            await wait_for(lambda: _ready(http, url, proc), what="prometheus ready", within=30)
            await wait_for(
                lambda: _targets_up(http, url),
                lambda health: len(health) == len(targets) and set(health) == {"up"},
                what="prometheus targets up",
                within=30,
                every=0.2,
            )
        except AssertionError as err:
            raise AssertionError(f"{err}\nprometheus log:\n{log.read_text()[-3000:]}") from None
        yield PrometheusServer(url=url, log=log)
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
