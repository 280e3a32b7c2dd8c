"""Benchmark: deployment throughput of the scaled-out control plane with 1 worker process
against 3, in the same run.

    python -m benchmarks.bench_scale_out [--n 50] [--apis 2]

The cluster of tests/e2e/test_scale_out.py, without the chaos: `--apis` `r2c api` processes
and worker processes (tests/e2e/scale_worker.py: every real workflow and activity on the
SHARED NO-OP provider, a fake named as such, so the figures are orchestration, not process
start-ups) on their own Temporal dev server (in memory, tuned like `r2c up`'s) and their own
PostgreSQL server, in a temporary directory.

N components; each block starts one deployment of every component at once through the APIs in
turn (a canary of 10 `set_weight` steps, no pauses: 24 activities) and waits for all of them
to end. Throughput is N / the block's wall time. Blocks run in the order 1 3 3 1 workers
(ABBA), so the dev server's drift as histories pile up cancels out of the ratio; an
unmeasured first block deploys every target once (a target's first deployment skips its
steps). `run_block` also runs at the end of tests/e2e/test_scale_out.py, on its cluster.
During each block the CPU time of every process is read from /proc: the Temporal
server, PostgreSQL (all its backends), the APIs, the workers and this process, and the
machine's busy cores, which say what limits the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from temporalio.client import Client

from benchmarks.bench_deployments import cpu_ms
from cli.processes import free_port
from cli.temporal_server import dev_server_argv, wait_until_serving
from core.ids import deployment_workflow_id
from core.settings import Settings
from core.temporal import connect
from tests.e2e.scale_cluster import Balancer, Cluster, register, start_cluster

ENVIRONMENT = "bench"
CANARY = {"type": "canary", "steps": [{"set_weight": w} for w in range(10, 101, 10)]}
BLOCKS = (1, 3, 3, 1)


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def children(pid: int) -> list[int]:
    """The direct children of `pid` (PostgreSQL's backends of its postmaster)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def cpu_with_reaped_ms(pid: int) -> float:
    """CPU time of a process and of its children that have exited (PostgreSQL's backends of
    the connections closed since), in milliseconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) * 1000 / os.sysconf("SC_CLK_TCK")


def postmaster(port: int) -> int:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = cmdline.read_bytes().split(b"\0")
            if argv[0].endswith(b"postgres") and f"-p {port}".encode() in b" ".join(argv):
                return int(cmdline.parent.name)
    raise SystemExit(f"error: no PostgreSQL server on port {port}")


@dataclass
class Block:
    workers: int
    n: int
    seconds: float
    cores: dict[str, float]  # CPU seconds per wall second, by group
    machine: float  # busy cores of the whole machine

    @property
    def throughput(self) -> float:
        return self.n / self.seconds


class Meter:
    """CPU time of every process of the run, by group, over one block. Without the server's
    or PostgreSQL's pid (servers this process did not start), that group is left out."""

    def __init__(self, cluster: Cluster, server_pid: int | None, pg_pid: int | None) -> None:
        self.cluster, self.server_pid, self.pg_pid = cluster, server_pid, pg_pid

    def sample(self) -> dict[str, float]:
        def ms(pids: list[int]) -> float:
            total = 0.0
            for pid in pids:
                with contextlib.suppress(OSError):  # a backend that just exited
                    total += cpu_ms(pid)
            return total

        found = {}
        if self.server_pid is not None:
            found["temporal"] = ms([self.server_pid])
        if self.pg_pid is not None:
            found["postgres"] = cpu_with_reaped_ms(self.pg_pid) + ms(children(self.pg_pid))
        found["apis"] = ms([a.pid for a in self.cluster.apis if a.alive()])
        found["workers"] = ms([w.pid for w in self.cluster.workers if w.alive()])
        found["bench"] = ms([os.getpid()])
        return found


async def set_workers(cluster: Cluster, count: int) -> None:
    """Exactly `count` workers serving: the extra ones stopped gracefully, missing ones started."""
    alive = [w for w in cluster.workers if w.alive()]
    for worker in alive[count:]:
        await asyncio.to_thread(worker.stop)
    if len(alive) < count:
        await cluster.start_workers(count - len(alive))


async def deploy_all(lb: Balancer, client: Client, names: list[str], version: str) -> None:
    async def one(name: str) -> None:
        body = {"component": name, "environment": ENVIRONMENT, "version": version,
                "strategy": CANARY}  # fmt: skip
        await lb.deploy(body, key=f"{name}-{version}")
        # On the workflow's result, not by polling the API: the load is the deployments'.
        await client.get_workflow_handle(deployment_workflow_id(name, ENVIRONMENT)).result()

    await asyncio.gather(*(one(name) for name in names))


async def run_block(
    lb: Balancer, client: Client, meter: Meter, names: list[str], workers: int, version: str
) -> Block:
    await set_workers(lb.cluster, workers)
    before, machine_before, began = meter.sample(), busy_jiffies(), time.perf_counter()
    await deploy_all(lb, client, names, version)
    seconds = time.perf_counter() - began
    after, machine_after = meter.sample(), busy_jiffies()
    cores = {k: (after[k] - before[k]) / 1000 / seconds for k in after}
    busy = machine_after[0] - machine_before[0]
    total = machine_after[1] - machine_before[1]
    machine = (os.cpu_count() or 1) * busy / max(total, 1)
    return Block(workers, len(names), seconds, cores, machine)


async def bench(
    args: argparse.Namespace, base: Path, target: str, server_pid: int, pg_url: str
) -> None:
    pg_pid = postmaster(int(pg_url.rsplit(":", 1)[1].split("/")[0]))
    cluster = await start_cluster(base, target, pg_url, apis=args.apis, workers=3)
    lb = Balancer(cluster)
    try:
        client = await connect(cluster.settings)
        names = [f"noop-{i}" for i in range(args.n)]
        await register(lb, names)
        meter = Meter(cluster, server_pid, pg_pid)
        await deploy_all(lb, client, names, "v0")  # warm-up: first deployments skip steps
        blocks = []
        for i, workers in enumerate(BLOCKS):
            block = await run_block(lb, client, meter, names, workers, f"v{i + 1}")
            blocks.append(block)
            shown = ", ".join(f"{k} {v:.2f}" for k, v in block.cores.items())
            print(f"{workers} worker(s): {args.n} deployments in {block.seconds:.1f} s, "
                  f"{block.throughput:.2f}/s; cores used: {shown}; "
                  f"machine busy {block.machine:.2f} of {os.cpu_count()}")  # fmt: skip
        report(blocks, args.n)
    finally:
        await lb.aclose()
        cluster.stop_everything()


def report(blocks: list[Block], n: int) -> None:
    def pooled(workers: int) -> float:
        return statistics.mean(b.throughput for b in blocks if b.workers == workers)

    one, three = pooled(1), pooled(3)
    print(f"throughput, {n} deployments of a 10-step canary: 1 worker {one:.2f}/s, "
          f"3 workers {three:.2f}/s; ratio 3/1 = {three / one:.2f}")  # fmt: skip
    for workers in (1, 3):
        mine = [b for b in blocks if b.workers == workers]
        cores = {k: statistics.mean(b.cores[k] for b in mine) for k in mine[0].cores}
        top = max(cores, key=lambda k: cores[k])
        machine = statistics.mean(b.machine for b in mine)
        ours = sum(cores.values())
        seconds = statistics.mean(b.seconds for b in mine)
        per = {k: v * seconds * 1000 / n for k, v in cores.items()}
        shown = ", ".join(f"{k} {v:.0f}" for k, v in per.items())
        print(f"  {workers} worker(s): busiest {top} at {cores[top]:.2f} cores; ours "
              f"{ours:.2f} cores, machine {machine:.2f} of {os.cpu_count()}; CPU ms per "
              f"deployment: {shown}; so {os.cpu_count()} idle cores would carry at most "
              f"{(os.cpu_count() or 1) * 1000 / sum(per.values()):.1f} deployments/s")  # fmt: skip


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """The test suite's throw-away PostgreSQL server (tests/conftest.py), outside pytest."""
    from tests.conftest import postgres_server

    with contextlib.contextmanager(postgres_server.__wrapped__)() as url:  # type: ignore[attr-defined]
        yield url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="deployments per block")
    parser.add_argument("--apis", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, postgres() as admin_url:
        port = free_port()
        settings = Settings(temporal_port=port, temporal_ui_port=free_port())
        server = subprocess.Popen(
            dev_server_argv(settings, db_file=None, metrics_port=free_port()),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            target = f"127.0.0.1:{port}"
            asyncio.run(wait_until_serving(None, target, "default", 30))
            name = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = admin_url.rsplit("/", 1)[0] + f"/{name}"
            asyncio.run(bench(args, Path(tmp), target, server.pid, url))
        finally:
            server.terminate()
            server.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
