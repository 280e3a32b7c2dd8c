"""The control plane scaled out on one machine, as it runs on many: `r2c api` processes and
worker processes (tests/e2e/scale_worker.py: the real workflows on the shared no-op provider)
against one external Temporal server (TEMPORAL_ADDRESS) and one PostgreSQL database, all on a
task queue of their own. Used by tests/e2e/test_scale_out.py and benchmarks/bench_scale_out.py.

`Balancer` is the client side of a load balancer: it spreads requests over the APIs in turn and
sends a request that an API refused to connect to (stopped, or not listening yet) to the next
one: the request never reached the API, so retrying cannot do anything twice. A connection
that the API closed with a request on its way (it was stopping) is retried only for requests
that are safe to repeat: reads, and deployment starts, which carry an Idempotency-Key so that
a repeat answers the deployment the first one started."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cli.bootstrap import ensure_admin_key
from cli.processes import free_port
from core.db.migrate import upgrade
from core.settings import Settings
from tests.support import wait_for

REPO = Path(__file__).resolve().parents[2]
FINAL = {"succeeded", "failed", "rolled_back", "aborted"}


@dataclass
class Process:
    """One process of the cluster: its command, log and current incarnation."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started: int = 0

    def start(self) -> None:
        self.started += 1
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no graceful anything, as when a machine dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, as an orchestrator stops a replica; the exit code (None: it had to be
        killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


@dataclass
class Worker(Process):
    ready_file: Path = field(default_factory=Path)

    def start(self) -> None:
        self.ready_file = self.log.with_name(f"{self.name}.{self.started + 1}.ready")
        self.argv = self.argv[:-1] + [str(self.ready_file)]
        super().start()

    async def until_ready(self, within: float = 60) -> None:
        async def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            return self.ready_file.exists()

        await wait_for(ready, within=within, every=0.05, what=f"{self.name} ready")


@dataclass
class Api(Process):
    url: str = ""


@dataclass
class Cluster:
    settings: Settings
    admin_key: str
    env: dict[str, str]
    apis: list[Api]
    workers: list[Worker]
    state_dir: Path

    @property
    def queue(self) -> str:
        return self.settings.task_queue

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def new_worker(self) -> Worker:
        name = f"worker-{len(self.workers) + 1}"
        worker = Worker(
            name,
            [sys.executable, "-m", "tests.e2e.scale_worker", str(self.state_dir), "-"],
            self.env,
            self.settings.home / f"{name}.log",
        )
        self.workers.append(worker)
        return worker

    async def start_workers(self, count: int) -> list[Worker]:
        started = [self.new_worker() for _ in range(count)]
        for worker in started:
            worker.start()
        await asyncio.gather(*(w.until_ready() for w in started))
        return started

    def stop_everything(self) -> None:
        """SIGTERM to all, then SIGKILL to what is left: whatever happened, nothing lingers."""
        everyone: list[Process] = [*self.apis, *self.workers]
        for process in everyone:
            if process.alive():
                assert process.proc is not None
                process.proc.terminate()
        for process in everyone:
            if process.proc is not None:
                try:
                    process.proc.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()

    def logs(self) -> str:
        parts = []
        for process in [*self.apis, *self.workers]:
            if process.log.exists():
                parts.append(f"----- {process.log.name} -----\n{process.log.read_text()[-4000:]}")
        return "\n".join(parts)


async def start_cluster(
    base: Path, temporal_target: str, postgres_url: str, apis: int, workers: int
) -> Cluster:
    """`apis` API processes and `workers` worker processes on a new task queue, the store
    migrated and an admin key made first (as a deployment's init job would)."""
    home = base / "home"
    settings = Settings(
        home=home,
        postgres_url=postgres_url,
        temporal_address=temporal_target,
        task_queue=f"scale-{uuid.uuid4().hex[:8]}",
    )
    await asyncio.to_thread(upgrade, settings)
    key_file, _ = await ensure_admin_key(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("R2C_", "REDIS_"))}
    env.update(
        R2C_HOME=str(home),
        TEMPORAL_ADDRESS=temporal_target,
        POSTGRES_URL=postgres_url,
        R2C_TASK_QUEUE=settings.task_queue,
        R2C_WORKER_METRICS_PORT="0",
        LOG_LEVEL="WARNING",
    )
    cluster = Cluster(settings, key_file.read_text().strip(), env, [], [], base / "targets")
    for i in range(apis):
        port = free_port()
        api_env = {**env, "PORT": str(port), "METRICS_PORT": str(free_port())}
        argv = [sys.executable, "-m", "cli", "api"]
        api = Api(f"api-{i + 1}", argv, api_env, home / f"api-{i + 1}.log")
        api.url = f"http://127.0.0.1:{port}"
        api.start()
        cluster.apis.append(api)
    try:
        await cluster.start_workers(workers)
        async with httpx.AsyncClient(timeout=5) as http:
            for api in cluster.apis:
                await wait_for(
                    lambda api=api: _ready(http, api),  # type: ignore[misc]
                    within=30,
                    every=0.1,
                    what=f"{api.name} ready",
                )
    except BaseException:
        cluster.stop_everything()
        raise
    return cluster


async def _ready(http: httpx.AsyncClient, api: Api) -> bool:
    if not api.alive():
        raise AssertionError(f"{api.name} exited: {api.log.read_text()[-3000:]}")
    try:
        return (await http.get(f"{api.url}/ready")).status_code == 200
    except httpx.TransportError:
        return False


class Balancer:
    """Requests to the APIs in turn; a refused connection goes to the next API."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.http = httpx.AsyncClient(timeout=30, headers=cluster.auth())
        self.turn = itertools.count()
        self.refused = 0  # requests that an API refused and another one answered
        self.served: dict[str, int] = {api.name: 0 for api in cluster.apis}
        self.busy = 0  # 409s naming a deployment that had ended, its workflow still closing

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        apis = self.cluster.apis
        first = next(self.turn)
        repeatable = method == "GET" or "Idempotency-Key" in kwargs.get("headers", {})
        for attempt in range(len(apis) * 3):
            api = apis[(first + attempt) % len(apis)]
            try:
                resp = await self.http.request(method, api.url + path, **kwargs)
            except httpx.ConnectError:
                self.refused += 1
                await asyncio.sleep(0.05 * (attempt // len(apis)))
                continue
            except (httpx.ReadError, httpx.RemoteProtocolError):
                # The API closed a kept-alive connection as it stopped, with this request on
                # its way: it may have arrived. Only a request that is safe to repeat is.
                if not repeatable:
                    raise
                self.refused += 1
                continue
            self.served[api.name] += 1
            return resp
        raise AssertionError(f"no API accepted {method} {path}")

    async def deploy(
        self, body: dict[str, Any], key: str, after: str | None = None
    ) -> dict[str, Any]:
        """Start a deployment (an Idempotency-Key makes a repeat answer the same one).
        `after`: the target's previous deployment, which has ended; its workflow may still be
        closing (a worker killed just then delays that by its sticky queue's timeout), and
        the API answers 409 naming it meanwhile: the client waits, as the hint says."""
        deadline = time.monotonic() + 30
        while True:
            resp = await self.request(
                "POST", "/api/v1/deployments", json=body, headers={"Idempotency-Key": key}
            )
            running = resp.json().get("error", {}).get("details", {}).get("running")
            if resp.status_code == 409 and after and running == after:
                assert time.monotonic() < deadline, resp.text
                self.busy += 1
                await asyncio.sleep(0.2)
                continue
            assert resp.status_code in (200, 202), resp.text
            return dict(resp.json())

    async def deployment(self, deployment_id: str) -> dict[str, Any]:
        resp = await self.request("GET", f"/api/v1/deployments/{deployment_id}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def until_final(self, deployment_id: str, within: float = 90) -> dict[str, Any]:
        return await wait_for(
            lambda: self.deployment(deployment_id),
            lambda d: d["state"] in FINAL,
            within=within,
            every=0.2,
            what=f"{deployment_id} to end",
        )

    async def aclose(self) -> None:
        await self.http.aclose()


async def register(balancer: Balancer, names: list[str]) -> None:
    """Components on the no-op provider (their command never runs)."""
    for name in names:
        spec = {"name": name, "runtime": {"command": ["noop", "{port}"]}}
        resp = await balancer.request("POST", "/api/v1/components", json=spec)
        assert resp.status_code == 201, resp.text
