"""What the judge's end-to-end tests share: demo versions shaped by their latency, jitter and
error rate, load that runs until told to stop, judge metrics, and a standalone router in front
of two demo processes with 1 s sample buckets (for judging many windows without deploying).

The demo's latency is a lognormal draw per request (mean DEMO_LATENCY_MS, standard deviation
DEMO_LATENCY_JITTER_MS), so two versions of the same settings differ only by noise, as the
judge's false-positive rate needs them to."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.infrastructure.local.router.samples import BUCKET_SECONDS_ENV
from cli.load import run_load
from cli.processes import free_port
from tests.integration.test_router_samples import DEMO, REPO, ROUTER, _listening, _table
from tests.support import stop_processes, wait_for_sync


@dataclass(frozen=True)
class Shape:
    """How a demo version behaves: mean latency and its jitter (ms), and its error rate."""

    latency_ms: float = 20.0
    jitter_ms: float = 5.0
    error_rate: float = 0.0

    def env(self) -> dict[str, str]:
        """The deployment's `env` that makes an `r2c demo serve` instance behave so."""
        return {
            "DEMO_LATENCY_MS": f"{self.latency_ms:g}",
            "DEMO_LATENCY_JITTER_MS": f"{self.jitter_ms:g}",
            "DEMO_ERROR_RATE": f"{self.error_rate:g}",
        }


@dataclass
class Traffic:
    """What a load run sent, by the versions that answered."""

    requests: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def load_until(url: str, stop: asyncio.Event, rps: float) -> Traffic:
    """`rps` requests a second in 2-second runs until `stop` is set, however long that takes
    (a fixed-length load could end before a slow machine's analysis)."""
    seen = Traffic()
    while not stop.is_set():
        report = await run_load(url, rps=rps, duration=2)
        seen.requests += report.requests
        seen.failed += report.failed
        seen.seconds += report.duration_s
    return seen


def judge_metric(
    metrics: list[dict[str, Any]] | None = None,
    *,
    interval: str = "5s",
    count: int = 1,
    name: str = "judge",
    **spec: Any,
) -> dict[str, Any]:
    """An analysis metric of kind judge: latency and errors, both critical, unless `metrics`
    says otherwise; `spec` adds JudgeSpec fields (baseline, baseline_window, on_verdict)."""
    return {
        "name": name,
        "interval": interval,
        "count": count,
        "judge": {
            "metrics": metrics
            or [
                {"name": "latency", "kind": "latency", "critical": True},
                {"name": "errors", "kind": "errors", "critical": True},
            ],
            **spec,
        },
    }


def canary(weight: int, metric: dict[str, Any]) -> dict[str, Any]:
    """A canary at `weight`% judged by `metric`, then promoted."""
    return {
        "type": "canary",
        "steps": [
            {"set_weight": weight},
            {"analysis": {"metrics": [metric]}},
            {"set_weight": 100},
        ],
    }


@contextlib.contextmanager
def router_before(
    tmp: Path, stable: Shape, canary_shape: Shape, weight: int
) -> Iterator[tuple[str, str]]:
    """Demo v1 (`stable`) and v2 (`canary_shape`) behind a real router with 1 s buckets,
    `weight`% to v2; yields the router's (url, admin url)."""
    ports = {"v1": free_port(), "v2": free_port()}
    port, admin = free_port(), free_port()
    table = tmp / "routes.json"
    _table(table, ports, canary=weight, generation=1)

    def demo(version: str, shape: Shape) -> list[str]:
        numbers = [f"{shape.latency_ms:g}", f"{shape.jitter_ms:g}", f"{shape.error_rate:g}"]
        return [sys.executable, "-c", DEMO, str(ports[version]), version, *numbers]

    argv = [
        demo("v1", stable),
        demo("v2", canary_shape),
        [sys.executable, "-c", ROUTER, str(table), str(port), str(admin)],
    ]
    env = {**os.environ, BUCKET_SECONDS_ENV: "1"}
    with (tmp / "processes.log").open("wb") as log:
        procs = [
            subprocess.Popen(a, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
            for a in argv
        ]
    try:
        for p, proc in zip([*ports.values(), port, admin], [*procs, procs[-1]], strict=True):
            wait_for_sync(lambda p=p, proc=proc: _listening(p, proc), what=f"port {p}", within=30)  # type: ignore[misc]
        yield f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{admin}"
    finally:
        stop_processes(procs)
