"""Benchmark: what orchestrating a deployment costs, and 200 deployments at once.

    python -m benchmarks.bench_deployments [--runs 5] [--concurrent 200] [--no-encryption]
    python -m benchmarks.bench_deployments --tracing [--runs 10]

1. A canary of 10 `set_weight` steps (no pauses) against a bare workflow that runs the same
   number of no-op activities, alternating, on the same server: the ratio is the overhead of
   the deployment logic (status, saga bookkeeping, store records) over Temporal's own cost.
2. `--concurrent` canaries of 10 steps at once, on as many targets, through ONE worker: total
   time against as many bare workflows at once, the worker's memory (RSS now and peak) and
   the history length of a deployment.

The worker is `benchmarks/noop_worker.py`: the real workflow and store on a no-op
infrastructure provider, so the figures are orchestration, not process start-ups. Payloads are
encrypted (AES-256-GCM, as by default); `--no-encryption` runs the same in clear, so the two
runs' figures give the codec's cost.

3. `--tracing` (instead of 1 and 2): the same 10-step canary with tracing off and on, in
   blocks ABBA (a fresh worker per block, with or without OTEL_EXPORTER_OTLP_ENDPOINT; starts
   from a client with or without Temporal's tracing interceptor), every span exported over
   OTLP/HTTP to a real receiver in this process: the ratio is what tracing costs a deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from cli.processes import free_port
from cli.temporal_server import dev_server_argv, wait_until_serving
from core.contracts import DEPLOYMENT_WORKFLOW
from core.db import components as component_store
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.ids import deployment_workflow_id
from core.models.components import ComponentSpec
from core.models.deployments import CanaryStrategy, DeploymentInput, SetWeightStep
from core.settings import Settings
from core.temporal import connect

QUEUE = "bench-deployments"


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) a process has used so far, in milliseconds: unlike wall time,
    it hardly moves when other processes compete for the cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def canary(component: str, version: str, n: int = 0) -> DeploymentInput:
    steps = [SetWeightStep(set_weight=w) for w in range(10, 101, 10)]
    return DeploymentInput(
        component=component,
        environment="bench",
        version=version,
        strategy=CanaryStrategy(steps=steps) if n else CanaryStrategy(steps=steps[:1]),
        deployment_id=f"bench-{component}-{version}-{time.monotonic_ns()}",
        initiator="bench",
        replicas_resolved=1,
    )


async def deploy(client: Client, inp: DeploymentInput) -> tuple[float, int, int]:
    """Run one deployment; (seconds, history events, activities)."""
    began = time.perf_counter()
    handle = await client.start_workflow(
        DEPLOYMENT_WORKFLOW,
        inp,
        id=deployment_workflow_id(inp.component, inp.environment),
        task_queue=QUEUE,
    )
    await handle.result()
    seconds = time.perf_counter() - began
    events = [e async for e in handle.fetch_history_events()]
    scheduled = sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in events)
    return seconds, len(events), scheduled


async def bare(client: Client, n: int, i: int) -> float:
    began = time.perf_counter()
    await client.execute_workflow("bare-activities", n, id=f"bare-{i}", task_queue=QUEUE)
    return time.perf_counter() - began


async def bench(
    args: argparse.Namespace, settings: Settings, worker_pid: int, server_pid: int
) -> None:
    client = await connect(settings)
    print("payloads:", "encrypted (AES-256-GCM)" if settings.payload_encryption else "in clear")
    engine = make_engine(settings)
    async with sessions(engine)() as session:
        for i in range(args.concurrent):
            spec = {"name": f"noop-{i}", "runtime": {"command": ["noop", "{port}"]}}
            await component_store.create(session, ComponentSpec.model_validate(spec))
        await session.commit()
    await engine.dispose()

    # 1. Overhead of one deployment against a bare workflow with as many activities.
    await deploy(client, canary("noop-0", "v0"))  # the first deployment skips the steps
    seconds, events, activities = await deploy(client, canary("noop-0", "w0", 10))  # warm-up
    await bare(client, activities, -1)
    canary_s, bare_s = [], []
    cpu = {"canary": [0.0, 0.0], "bare": [0.0, 0.0]}  # (worker, server) milliseconds

    def charge(kind: str, before: tuple[float, float]) -> None:
        cpu[kind][0] += cpu_ms(worker_pid) - before[0]
        cpu[kind][1] += cpu_ms(server_pid) - before[1]

    for run in range(args.runs):
        before = (cpu_ms(worker_pid), cpu_ms(server_pid))
        s, events, activities = await deploy(client, canary("noop-0", f"v{run + 1}", 10))
        charge("canary", before)
        canary_s.append(s)
        before = (cpu_ms(worker_pid), cpu_ms(server_pid))
        bare_s.append(await bare(client, activities, run))
        charge("bare", before)
    c, b = statistics.median(canary_s), statistics.median(bare_s)
    print(f"canary, 10 steps, no pauses: median {c * 1000:.0f} ms over {args.runs} runs;"
          f" {activities} activities, {events} history events")  # fmt: skip
    print(f"bare workflow, {activities} no-op activities: median {b * 1000:.0f} ms")
    print(f"overhead ratio canary/bare: {c / b:.2f}; per activity: canary"
          f" {c * 1000 / activities:.1f} ms, bare {b * 1000 / activities:.1f} ms")  # fmt: skip
    (cw, cs), (bw, bs) = (
        (v / args.runs for v in cpu["canary"]),
        (v / args.runs for v in cpu["bare"]),
    )
    print(f"CPU per run: worker canary {cw:.0f} ms, bare {bw:.0f} ms (ratio {cw / bw:.2f});"
          f" Temporal server canary {cs:.0f} ms, bare {bs:.0f} ms")  # fmt: skip

    # 2. Many at once through one worker.
    before, _ = rss_mb(worker_pid)
    firsts = [canary(f"noop-{i}", "v0") for i in range(1, args.concurrent)]
    await asyncio.gather(*(deploy(client, inp) for inp in firsts))
    began = time.perf_counter()
    results = await asyncio.gather(
        *(deploy(client, canary(f"noop-{i}", "v1", 10)) for i in range(1, args.concurrent))
    )
    total = time.perf_counter() - began
    now, peak = rss_mb(worker_pid)
    lengths = [r[1] for r in results]
    # The baseline in the same run: as many bare workflows of as many activities at once.
    began = time.perf_counter()
    await asyncio.gather(*(bare(client, activities, 1000 + i) for i in range(len(results))))
    bare_total = time.perf_counter() - began
    print(f"{len(results)} concurrent canaries of 10 steps through one worker: {total:.1f} s"
          f" ({len(results) / total:.1f} deployments/s); as many bare workflows:"
          f" {bare_total:.1f} s; ratio {total / bare_total:.2f}")  # fmt: skip
    print(f"worker memory: {before:.0f} MB before, {now:.0f} MB after, peak {peak:.0f} MB")
    print(f"history length per deployment: mean {statistics.mean(lengths):.0f} events,"
          f" max {max(lengths)}")  # fmt: skip


async def bench_tracing(
    args: argparse.Namespace, settings: Settings, start_worker: Any, server_pid: int
) -> None:
    """Tracing off (A) and on (B), in blocks A B B A of `--runs` canaries each."""
    from core.tracing import setup_tracing, shutdown_tracing
    from tests.integration.otlp_receiver import otlp_receiver

    await _create_components(settings, 1)
    plain = await connect(settings)  # before tracing is set up: no interceptor
    with otlp_receiver() as receiver:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        setup_tracing("bench", settings)
        traced = await connect(settings)
        seconds: dict[bool, list[float]] = {False: [], True: []}
        cpu = {False: 0.0, True: 0.0}
        version = 0
        for on in (False, True, True, False):
            worker = start_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint} if on else {})
            try:
                client = traced if on else plain
                version += 1
                await deploy(client, canary("noop-0", f"warm{version}", 10))  # warm-up
                for _ in range(args.runs):
                    version += 1
                    before = cpu_ms(worker.pid)
                    s, _, activities = await deploy(client, canary("noop-0", f"v{version}", 10))
                    cpu[on] += cpu_ms(worker.pid) - before
                    seconds[on].append(s)
            finally:
                worker.terminate()
                worker.wait(20)
        await asyncio.to_thread(shutdown_tracing)
        spans = len(receiver.snapshot())
    off, on_ = statistics.median(seconds[False]), statistics.median(seconds[True])
    n = len(seconds[False])
    print(f"canary, 10 steps ({activities} activities), {n} runs each, blocks ABBA:")
    print(f"  tracing off: median {off * 1000:.0f} ms, worker CPU {cpu[False] / n:.0f} ms/run")
    print(f"  tracing on:  median {on_ * 1000:.0f} ms, worker CPU {cpu[True] / n:.0f} ms/run"
          f" ({spans} spans received)")  # fmt: skip
    print(f"tracing overhead ratio on/off: wall {on_ / off:.2f},"
          f" worker CPU {cpu[True] / cpu[False]:.2f}")  # fmt: skip


async def _create_components(settings: Settings, count: int) -> None:
    engine = make_engine(settings)
    async with sessions(engine)() as session:
        for i in range(count):
            spec = {"name": f"noop-{i}", "runtime": {"command": ["noop", "{port}"]}}
            await component_store.create(session, ComponentSpec.model_validate(spec))
        await session.commit()
    await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--no-encryption", action="store_true", help="payloads in clear")
    parser.add_argument(
        "--tracing", action="store_true", help="only the cost of tracing: canaries off and on"
    )
    args = parser.parse_args()
    encryption = ["--no-encryption"] if args.no_encryption else []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = Settings(temporal_port=port, temporal_ui_port=free_port())
        server = subprocess.Popen(
            dev_server_argv(base, Path(tmp) / "temporal.db", metrics_port=free_port()),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        env: dict[str, Any] = {
            **os.environ,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
            "R2C_TASK_QUEUE": QUEUE,
            "R2C_HOME": str(Path(tmp) / "home"),
            "LOG_LEVEL": "WARNING",
        }
        env.pop("POSTGRES_URL", None)
        settings = Settings(
            temporal_address=env["TEMPORAL_ADDRESS"],
            home=Path(env["R2C_HOME"]),
            payload_encryption=not args.no_encryption,
        )
        worker: subprocess.Popen[bytes] | None = None

        def start_worker(extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
            proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.noop_worker", *encryption],
                env={**env, **(extra or {})},
                stdout=subprocess.PIPE,
            )
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                proc.kill()
                raise SystemExit("error: the benchmark worker did not start")
            return proc

        try:
            asyncio.run(wait_until_serving(None, env["TEMPORAL_ADDRESS"], "default", 30))
            upgrade(settings)
            if args.tracing:
                asyncio.run(bench_tracing(args, settings, start_worker, server.pid))
                return 0
            worker = start_worker()
            asyncio.run(bench(args, settings, worker.pid, server.pid))
        finally:
            for proc in (worker, server):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
