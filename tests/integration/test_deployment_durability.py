"""Durability by killing things: a worker SIGKILLed mid-deployment, a restarted Temporal
server. Real worker processes, a file-backed dev server, real instances and traffic."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cli.demo import demo_spec
from cli.load import run_load
from cli.processes import free_port
from cli.temporal_server import dev_server_argv, wait_until_serving
from core.settings import Settings
from tests.integration.deploying import (
    FINAL,
    deploy,
    first_version,
    get,
    instance_count,
    until,
    versions,
)
from tests.integration.system import System, retire_instances
from tests.support import wait_for

REPO = Path(__file__).resolve().parents[2]


class TemporalServer:
    """A dev server on a database file, so that it can be stopped and started again."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.settings = Settings(temporal_port=self.port, temporal_ui_port=free_port())
        self.db = base / "temporal.db"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _spawn(self) -> None:
        argv = dev_server_argv(self.settings, self.db, metrics_port=free_port())
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def start(self) -> None:
        self._spawn()
        await wait_until_serving(None, self.target, "default", 30)

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(15)


@pytest.fixture
async def temporal_server(tmp_path: Path) -> AsyncIterator[TemporalServer]:
    server = TemporalServer(tmp_path)
    await server.start()
    yield server
    server.stop(kill=True)  # the test is over: its history is not needed


class WorkerProcess:
    """`r2c worker` as its own process, as production runs it."""

    def __init__(self, settings: Settings) -> None:
        env = {k: v for k, v in os.environ.items() if k != "POSTGRES_URL"}
        env.update(
            R2C_HOME=str(settings.home),
            TEMPORAL_ADDRESS=settings.temporal_target,
            R2C_TASK_QUEUE=settings.task_queue,
            R2C_WORKER_METRICS_PORT="0",
            LOG_LEVEL="WARNING",
        )
        if settings.postgres_url:
            env["POSTGRES_URL"] = settings.postgres_url
        self.env = env
        self.log = settings.home / "worker.log"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "cli", "worker"],
                    env=self.env,
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )

    def kill(self) -> None:
        proc = self.procs[-1]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:  # the test is over: no need to wait for a graceful stop
            if proc.poll() is None:
                proc.kill()
                proc.wait(20)


@pytest.fixture
async def durable(
    make_system: Callable[..., Any], temporal_server: TemporalServer
) -> AsyncIterator[tuple[System, WorkerProcess, TemporalServer]]:
    """The API in this process, a worker process, both on the restartable server."""
    system: System = await make_system(worker=False, temporal_address=temporal_server.target)
    spec = demo_spec("demo", 2)
    spec["runtime"]["health_check"]["interval_seconds"] = 0.5
    assert (
        await system.http.post("/api/v1/components", json=spec, headers=system.auth())
    ).status_code == 201
    worker = WorkerProcess(system.settings)
    worker.start()
    try:
        yield system, worker, temporal_server
    finally:
        worker.stop_all()
        await retire_instances(system)  # now, while everything still runs


STRATEGIES: dict[str, dict[str, Any]] = {
    "canary": {
        "type": "canary",
        "steps": [
            {"set_weight": 25},
            {"pause": {"duration": "1s"}},
            {"set_weight": 50},
            {"pause": {"duration": "1s"}},
        ],
    },
    "blue_green": {
        "type": "blue_green",
        "auto_promotion_seconds": 1,
        "scale_down_delay_seconds": 1,
    },
    "rolling": {"type": "rolling", "max_surge": 1, "pause_between_batches": "1s"},
}


async def _phase_reached(system: System, deployment_id: str, seen: set[str]) -> dict[str, Any]:
    detail = await get(system, deployment_id)
    if detail["status"]:
        seen.add(detail["status"]["phase"])
    return detail


@pytest.mark.parametrize("strategy", list(STRATEGIES))
async def test_a_killed_worker_finishes_the_deployment_after_restart(
    durable: tuple[System, WorkerProcess, TemporalServer], strategy: str
) -> None:
    system, worker, _ = durable
    endpoint = await first_version(system)
    load = asyncio.create_task(run_load(endpoint + "/", rps=50, duration=10))
    started = await deploy(system, "v2", STRATEGIES[strategy])
    seen: set[str] = set()
    # Kill it twice: once as the new instances come up, once while traffic shifts.
    for moment in ("starting", "weight|pause|batch|switch|keeping"):
        words = moment.split("|")
        await wait_for(
            lambda: _phase_reached(system, started["id"], seen),
            lambda d, words=words: (  # type: ignore[misc]
                d["state"] in FINAL or any(w in d["status"]["phase"] for w in words if d["status"])
            ),
            within=60,
            what=f"a phase matching {moment}",
        )
        worker.kill()
        worker.start()
    done = await until(system, started["id"], *FINAL, within=90)
    report = await load
    assert done["state"] == "succeeded", (done["reason"], seen)
    assert await versions(endpoint) == {"v2"}
    assert instance_count(system) == 2, "an instance leaked or was started twice"
    assert report.failed == 0, report.errors


async def test_a_killed_worker_still_rolls_back_a_bad_canary(
    durable: tuple[System, WorkerProcess, TemporalServer],
) -> None:
    system, worker, _ = durable
    endpoint = await first_version(system)
    metric = {"name": "error_rate", "failure_condition": "result > 0.05", "initial_delay": "1s"}
    strategy = {
        "type": "canary",
        "steps": [{"set_weight": 50}, {"analysis": {"metrics": [metric]}}],
    }
    # Traffic lasts until the verdict: a restart slower than the load would otherwise leave
    # the analysis without data, and no data is rightly not a verdict.
    load = asyncio.create_task(run_load(endpoint + "/", rps=50, duration=120))
    started = await deploy(system, "v2", strategy, env={"DEMO_ERROR_RATE": "0.6"})
    await wait_for(
        lambda: get(system, started["id"]),
        lambda d: bool(d["status"]) and "analysis" in d["status"]["phase"],
        within=60,
        what="the analysis to start",
    )
    worker.kill()
    worker.start()
    done = await until(system, started["id"], *FINAL, within=90)
    load.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await load
    assert done["state"] == "rolled_back", done["reason"]
    assert await versions(endpoint) == {"v1"}
    assert instance_count(system) == 2


async def test_a_restarted_temporal_server_carries_on(
    durable: tuple[System, WorkerProcess, TemporalServer],
) -> None:
    system, worker, server = durable
    endpoint = await first_version(system)
    strategy = {"type": "canary", "steps": [{"set_weight": 30}, {"pause": {"duration": "3s"}}]}
    started = await deploy(system, "v2", strategy)
    await until(system, started["id"], "progressing")
    await wait_for(
        lambda: get(system, started["id"]),
        lambda d: bool(d["status"]) and d["status"]["phase"].startswith("pause"),
        within=60,
        what="the pause",
    )
    server.stop()
    await server.start()
    if worker.procs[-1].poll() is not None:  # a worker may give up while the server is away
        worker.start()
    done = await until(system, started["id"], *FINAL, within=90)
    assert done["state"] == "succeeded", done["reason"]
    assert await versions(endpoint) == {"v2"}
    assert instance_count(system) == 2
