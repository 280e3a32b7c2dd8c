"""Benchmark: workflow starts per second and start latency, raw Temporal client vs the REST API.

Both paths start `component-health-check` workflows on the SAME embedded Temporal dev server
(tuned like `r2c up`) in the same run, so their ratio says what the REST layer costs:

1. raw: `core.temporal.connect()` + `client.start_workflow(...)` from this process;
2. REST: `POST /api/v1/orchestration/workflows` against `python -m cli api`, a separate
   process, driven by a lean client (raw asyncio streams, one keep-alive connection per
   concurrent starter). httpx is not used on purpose: measured on 2 cores, an httpx load
   generator spends 3-7 ms of CPU per request while the API spends 1-2 ms, so the benchmark
   would measure the load generator.

The order is raw, REST, raw: the mean of the two raw runs is the baseline, and their spread
shows how noisy the machine is. No worker runs, the workflows are only started. Each run also
reports the CPU each process spent per start, and how many cores other processes of the
machine took meanwhile: on 2 shared cores that is the main source of noise.

Run from the repository root (not collected by pytest; its name does not start with `test_`):

    python -m benchmarks.bench_workflow_starts --starts 2000 --concurrency 32

`--with-api-options` adds a `raw+opts` run (raw starts carrying what the API adds to each
start), `--profile-api FILE` samples the API with py-spy during the REST run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from benchmarks.lean_http import HttpConnection, build_post
from cli.processes import Child, free_port
from cli.temporal_server import dev_server_argv, wait_until_serving
from core.contracts import HEALTH_CHECK_WORKFLOW, INITIATOR
from core.models.health import HealthCheckInput
from core.settings import Settings
from core.temporal import connect

HOST = "127.0.0.1"
START_PATH = "/api/v1/orchestration/workflows"
TARGET_RATIO = 0.9  # from the issue: the REST path should stay at or above 0.9 of raw
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL when cleaning up

# A start: resolves to None when the workflow was started, else a short reason it was not.
Starter = Callable[[], Awaitable[str | None]]


# ----------------------------------------------------------------------------- measurements


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process (all its threads) from /proc; this process when None."""
    if pid is None:
        return time.process_time()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    # The command name (field 2) may contain spaces; fields after its ")" start at field 3,
    # so utime (14) and stime (15) are at indexes 11 and 12.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine spent busy (not idle or waiting on I/O)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return math.nan
    idle, iowait = ticks[3], ticks[4]
    # guest time (fields 9, 10) is already counted in user time
    return (sum(ticks[:8]) - idle - iowait) / _CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU seconds of the processes taking part, and of the whole machine, sampled around each
    measured run: the difference is what other processes took from the shared cores."""

    pids: Mapping[str, int | None]  # name -> pid (None: this benchmark process)

    def sample(self) -> dict[str, float]:
        used = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        used["machine"] = machine_busy_seconds()
        return used


@dataclass
class RunResult:
    """One measured run of one path."""

    path: str
    starts: int
    seconds: float
    latencies: list[float]  # seconds, sorted, successful starts only
    failures: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds used during the run

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def rate(self) -> float:
        """Successful starts per second of wall time."""
        return len(self.latencies) / self.seconds if self.seconds > 0 else math.nan

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    def cpu_ms_per_start(self, name: str) -> float:
        return self.cpu.get(name, math.nan) * 1000 / max(1, self.starts)

    @property
    def other_load(self) -> float:
        """Cores used on average by processes outside the benchmark during the run (noise)."""
        ours = sum(v for k, v in self.cpu.items() if k != "machine")
        return (self.cpu.get("machine", math.nan) - ours) / self.seconds


def merge(path: str, runs: list[RunResult]) -> RunResult:
    """Pool the rounds of one path: total starts over total seconds, all latencies."""
    cpu: dict[str, float] = {}
    failures: Counter[str] = Counter()
    for r in runs:
        failures.update(r.failures)
        for name, used in r.cpu.items():
            cpu[name] = cpu.get(name, 0.0) + used
    return RunResult(
        path,
        sum(r.starts for r in runs),
        sum(r.seconds for r in runs),
        sorted(x for r in runs for x in r.latencies),
        failures,
        cpu,
    )


async def drive(
    path: str, starters: list[Starter], starts: int, meter: CpuMeter | None
) -> RunResult:
    """Run `starts` starts, `len(starters)` at a time; time each one and the whole run."""
    tickets = iter(range(starts))  # shared: each coroutine takes the next ticket, no locking
    latencies: list[float] = []
    failures: Counter[str] = Counter()

    async def keep_starting(start: Starter) -> None:
        for _ in tickets:
            began = time.perf_counter()
            try:
                problem = await start()
            except Exception as err:  # a failed start is counted, never ends the run
                problem = f"{type(err).__name__}: {err}"
            if problem is None:
                latencies.append(time.perf_counter() - began)
            else:
                failures[problem[:160]] += 1

    before = meter.sample() if meter else {}
    began = time.perf_counter()
    await asyncio.gather(*(keep_starting(s) for s in starters))
    seconds = time.perf_counter() - began
    after = meter.sample() if meter else {}
    used = {name: after[name] - before[name] for name in before}
    return RunResult(path, starts, seconds, sorted(latencies), failures, used)


# ----------------------------------------------------------------------------- raw path


@contextlib.asynccontextmanager
async def raw_starters(
    client: Client, task_queue: str, count: int, api_options: bool = False
) -> AsyncIterator[list[Starter]]:
    """Starters that call the SDK directly; one shared client, as an application would.

    With `api_options`, each start carries what `POST /workflows` adds to it (an Initiator
    search attribute, a memo, a summary, id policies), so that the gap between raw and REST
    can be split into extra work for the Temporal server and the cost of the HTTP layer.
    """
    workflow_input = HealthCheckInput()
    extra: dict[str, Any] = {}
    if api_options:
        extra = {
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
            "id_conflict_policy": WorkflowIDConflictPolicy.FAIL,
            "search_attributes": TypedSearchAttributes(
                [SearchAttributePair(INITIATOR, "apikey:bench")]
            ),
            "memo": {"input_sha256": "0" * 64},
            "static_summary": f"{HEALTH_CHECK_WORKFLOW} started by apikey:bench",
            "rpc_timeout": timedelta(seconds=10),
        }

    async def start() -> str | None:
        await client.start_workflow(
            HEALTH_CHECK_WORKFLOW,
            workflow_input,
            id=f"bench-raw-{uuid.uuid4()}",
            task_queue=task_queue,
            **extra,
        )
        return None

    yield [start] * count


# ----------------------------------------------------------------------------- REST path


@contextlib.asynccontextmanager
async def rest_starters(port: int, api_key: str, count: int) -> AsyncIterator[list[Starter]]:
    """One connection per starter, opened before the clock starts and closed afterwards."""
    request = build_post(port, START_PATH, {"type": HEALTH_CHECK_WORKFLOW, "input": {}}, api_key)
    connections = [HttpConnection(port) for _ in range(count)]
    try:
        await asyncio.gather(*(c.open() for c in connections))

        def starter(conn: HttpConnection) -> Starter:
            async def start() -> str | None:
                status, body = await conn.request(request)
                return None if status == 202 else f"HTTP {status}: {body[:120]!r}"

            return start

        yield [starter(c) for c in connections]
    finally:
        await asyncio.gather(*(c.close() for c in connections))


async def http_status(port: int, path: str) -> int | None:
    """GET `path` on a fresh connection; None while nothing listens yet."""
    conn = HttpConnection(port)
    try:
        status, _ = await conn.request(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode("latin-1")
        )
        return status
    except (OSError, asyncio.IncompleteReadError):
        return None
    finally:
        await conn.close()


# ----------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Ports:
    temporal: int
    temporal_ui: int
    temporal_metrics: int
    api: int
    api_metrics: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


def child_env(home: Path, settings: Settings, ports: Ports, task_queue: str) -> dict[str, str]:
    """The environment of the API and `apikey create`: ours minus every setting variable (so a
    POSTGRES_URL or R2C_ENV of the caller cannot leak in), plus the benchmark's own."""
    setting_names = {str(f.validation_alias) for f in Settings.model_fields.values()}
    env = {k: v for k, v in os.environ.items() if k not in setting_names | {"R2C_CONFIG_DIR"}}
    env.update(
        R2C_ENV="development",
        R2C_HOME=str(home),
        PORT=str(ports.api),
        METRICS_PORT=str(ports.api_metrics),
        TEMPORAL_ADDRESS=settings.temporal_target,
        TEMPORAL_NAMESPACE=settings.temporal_namespace,
        R2C_TASK_QUEUE=task_queue,
        LOG_LEVEL="WARNING",
    )
    return env


@contextlib.asynccontextmanager
async def running(child: Child) -> AsyncIterator[Child]:
    """Start a child and always stop it (SIGTERM, then SIGKILL after STOP_GRACE)."""
    try:
        await child.start()
        yield child
    finally:
        # If even this is interrupted (a second Ctrl-C), Child's PR_SET_PDEATHSIG still
        # sends the child SIGTERM when this process dies.
        await child.stop(STOP_GRACE)


async def create_admin_key(env: Mapping[str, str]) -> str:
    """`python -m cli apikey create bench --role admin`; the key is its first stdout line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "apikey",
        "create",
        "bench",
        "--role",
        "admin",
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    first_line = out.decode(errors="replace").splitlines()[0] if out else ""
    if proc.returncode != 0 or not first_line.startswith("r2c_"):
        raise RuntimeError(f"apikey create failed ({proc.returncode}): {out.decode()[-500:]}")
    return first_line.strip()


async def wait_until_ready(api: Child, port: int, within: float) -> None:
    """Poll `GET /ready` until 200; fail fast if the API process exits."""
    deadline = time.monotonic() + within
    last: int | None = None
    while time.monotonic() < deadline:
        if not api.running:
            raise RuntimeError(f"the API exited with code {api.exit_code}")
        last = await http_status(port, "/ready")
        if last == 200:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the API did not become ready within {within:.0f}s (last status {last})")


async def count_started(client: Client, task_queue: str, expected: int, within: float) -> int:
    """Workflows the server holds on the benchmark's queue; visibility may lag, so poll."""
    deadline = time.monotonic() + within
    while True:
        found = (await client.count_workflows(f"TaskQueue = '{task_queue}'")).count
        if found >= expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.25)


@contextlib.asynccontextmanager
async def py_spy(pid: int, output: Path | None) -> AsyncIterator[None]:
    """Optionally sample the API process with py-spy during a run (stopped with SIGINT, on
    which py-spy writes its file). Profiling costs CPU, so it is off unless asked for."""
    if output is None:
        yield
        return
    fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(output.suffix, "raw")
    argv = ["py-spy", "record", "--pid", str(pid), "--format", fmt, "--output", str(output)]
    # --nonblocking: never pause the API to take a sample, so it keeps its pace.
    argv += ["--nonblocking", "--rate", "200"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def tail(path: Path, lines: int = 15) -> str:
    """The end of a child's log, to explain a failure before the temp dir goes away."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ----------------------------------------------------------------------------- report

_COLUMNS = (
    f"{'path':<12} {'starts':>6} {'seconds':>8} {'starts/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'failures':>8} {'others':>6}   cpu ms/start: bench / api / temporal"
)


def format_row(r: RunResult) -> str:
    cpu = " / ".join(f"{r.cpu_ms_per_start(n):.2f}" for n in ("bench", "api", "temporal"))
    return (
        f"{r.path:<12} {r.starts:>6} {r.seconds:>8.2f} {r.rate:>9.1f} {r.p50_ms:>8.1f} "
        f"{r.p99_ms:>8.1f} {r.failed:>8} {r.other_load:>6.2f}   {cpu}"
    )


def report(
    results: list[RunResult], rest: RunResult, raws: list[RunResult], raw_rounds: list[RunResult]
) -> str:
    """The pooled table, the REST/raw ratios against the pooled raw runs, and the target."""
    raw_rate = sum(r.rate for r in raws) / len(raws)
    raw_p50 = sum(r.p50_ms for r in raws) / len(raws)
    raw_p99 = sum(r.p99_ms for r in raws) / len(raws)
    rates = [r.rate for r in raw_rounds]
    spread = (max(rates) - min(rates)) / raw_rate
    ratio = rest.rate / raw_rate
    lines = ["pooled over all rounds:", _COLUMNS, *(format_row(r) for r in results)]
    lines.append("(others: cores used by processes outside the benchmark during the run)\n")
    lines.append(
        f"raw baseline: {raw_rate:.1f} starts/s, p50 {raw_p50:.1f} ms, p99 {raw_p99:.1f} ms; "
        f"spread between raw rounds {spread:.0%}"
    )
    lines.append(f"REST/raw throughput ratio: {ratio:.2f}")
    lines.append(
        f"REST/raw latency ratio: p50 {rest.p50_ms / raw_p50:.2f}, p99 {rest.p99_ms / raw_p99:.2f}"
    )
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    lines.append(
        f"target (from the issue): the REST path should stay at or above {TARGET_RATIO} of raw"
        f" -> {verdict} ({ratio:.2f})"
    )
    for opts in (r for r in results if r.path == "raw+opts"):
        lines.append(
            f"raw+opts/raw throughput ratio: {opts.rate / raw_rate:.2f} (what the API's start "
            f"options cost Temporal); REST/raw+opts: {rest.rate / opts.rate:.2f} (the HTTP layer)"
        )
    for r in results:
        for problem, n in r.failures.most_common(3):
            lines.append(f"  {r.path} failure x{n}: {problem}")
    return "\n".join(lines)


def report_failures(result: RunResult) -> str:
    return "\n".join(f"  x{n}: {p}" for p, n in result.failures.most_common(5))


# ----------------------------------------------------------------------------- main


@dataclass
class Bench:
    """What the measured runs need once the servers are up."""

    client: Client
    task_queue: str
    api_port: int
    api_key: str
    api_pid: int
    meter: CpuMeter

    def raw(self, concurrency: int) -> contextlib.AbstractAsyncContextManager[list[Starter]]:
        return raw_starters(self.client, self.task_queue, concurrency)

    def rest(self, concurrency: int) -> contextlib.AbstractAsyncContextManager[list[Starter]]:
        return rest_starters(self.api_port, self.api_key, concurrency)

    def raw_opts(self, concurrency: int) -> contextlib.AbstractAsyncContextManager[list[Starter]]:
        return raw_starters(self.client, self.task_queue, concurrency, api_options=True)


async def measure(bench: Bench, args: argparse.Namespace) -> int:
    """Warm up both paths, then alternate raw and REST rounds in ABBA order and pool them.

    The dev server slows down as open workflows pile up; ABBA order (raw, REST, REST, raw,
    ...) gives both paths the same average server state, so that drift cancels out of the
    ratio instead of favouring whichever path ran first.
    """
    for name, opener in (("raw", bench.raw), ("REST", bench.rest)):
        async with opener(args.concurrency) as starters:
            warm = await drive(name, starters, args.warmup, None)
        print(f"warm-up {name}: {args.warmup} starts, {warm.failed} failed", flush=True)
        if warm.failed:
            print(report_failures(warm), flush=True)

    paths = [("raw", bench.raw), ("REST", bench.rest)]
    if args.with_api_options:
        paths.append(("raw+opts", bench.raw_opts))
    per_round = max(1, args.starts // args.rounds)
    rounds: dict[str, list[RunResult]] = {name: [] for name, _ in paths}
    for i in range(args.rounds):
        order = paths if i % 2 == 0 else paths[::-1]
        for name, opener in order:
            async with opener(args.concurrency) as starters:
                profile = args.profile_api if name == "REST" and i == 0 else None
                async with py_spy(bench.api_pid, profile):
                    result = await drive(f"{name} r{i + 1}", starters, per_round, bench.meter)
            rounds[name].append(result)
            print(format_row(result), flush=True)

    print()
    results = [merge(name, runs) for name, runs in rounds.items()]
    by_name = {r.path: r for r in results}
    print(report(results, by_name["REST"], [by_name["raw"]], rounds["raw"]))
    accepted = 2 * args.warmup + per_round * args.rounds * len(paths)
    accepted -= sum(r.failed for r in results)
    held = await count_started(bench.client, bench.task_queue, accepted, within=15)
    print(f"server check: {held} workflows on the benchmark's task queue (expected {accepted})")
    if args.profile_api:
        print(f"py-spy profile of the API during the first REST round: {args.profile_api}")
    return 1 if any(r.failed for r in results) or held != accepted else 0


def cancel_on_sigterm() -> None:
    """Make SIGTERM cancel the benchmark as Ctrl-C does, so the `finally` blocks stop the
    servers and delete the temp dir (PR_SET_PDEATHSIG alone would stop the servers only)."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def run(args: argparse.Namespace) -> int:
    """Start Temporal and the API in a temp dir, measure, and stop everything whatever happens."""
    cancel_on_sigterm()
    ports = Ports.pick()
    settings = Settings(
        temporal_port=ports.temporal,
        temporal_ui_port=ports.temporal_ui,
        temporal_address=f"{HOST}:{ports.temporal}",
    )
    task_queue = f"bench-starts-{uuid.uuid4().hex[:8]}"  # no worker polls it: starts only
    with tempfile.TemporaryDirectory(prefix="r2c-bench-", ignore_cleanup_errors=True) as tmp:
        home = Path(tmp)
        env = child_env(home, settings, ports, task_queue)
        temporal = Child(
            "temporal",
            dev_server_argv(settings, home / "temporal.db", metrics_port=ports.temporal_metrics),
            env,
            log_file=home / "temporal.log",
        )
        api = Child("api", [sys.executable, "-m", "cli", "api"], env, log_file=home / "api.log")
        try:
            async with running(temporal):
                await wait_until_serving(
                    temporal, settings.temporal_target, settings.temporal_namespace, 30
                )
                api_key = await create_admin_key(env)
                async with running(api):
                    await wait_until_ready(api, ports.api, within=60)
                    assert api.pid is not None and temporal.pid is not None
                    bench = Bench(
                        client=await connect(settings),
                        task_queue=task_queue,
                        api_port=ports.api,
                        api_key=api_key,
                        api_pid=api.pid,
                        meter=CpuMeter({"bench": None, "api": api.pid, "temporal": temporal.pid}),
                    )
                    print(
                        f"Temporal {settings.temporal_target} (pid {temporal.pid}), "
                        f"API :{ports.api} (pid {api.pid}); {args.starts} starts per run, "
                        f"concurrency {args.concurrency}, {os.cpu_count()} CPUs, "
                        f"load average {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
                    return await measure(bench, args)
        except Exception:
            for child in (temporal, api):
                print(f"--- last lines of {child.name}.log", file=sys.stderr)
                print(tail(home / f"{child.name}.log"), file=sys.stderr)
            raise


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_workflow_starts",
        description="Workflow starts/s and latency: raw Temporal client vs the REST API.",
    )
    parser.add_argument("--starts", type=int, default=2000, help="measured starts per path")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent starters")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per path")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured starts per path")
    parser.add_argument(
        "--with-api-options",
        action="store_true",
        help="also run 'raw+opts': raw starts carrying the search attribute, memo, summary and "
        "id policies the API adds (splits the gap into Temporal work and HTTP layer)",
    )
    parser.add_argument(
        "--profile-api",
        type=Path,
        default=None,
        metavar="FILE",
        help="sample the API with py-spy during the REST run (.svg flamegraph, .json "
        "speedscope, anything else collapsed stacks); perturbs the REST figures",
    )
    args = parser.parse_args(argv)
    if args.starts < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--starts and --concurrency must be positive, --warmup not negative")
    return args


def event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """uvloop when installed (the API runs on it too, and it keeps the client lean)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main() -> None:
    args = parse_args()
    # A shell starting us in the background hands SIGINT down ignored, and asyncio then never
    # turns it into a cancellation; restore Python's default so Ctrl-C always cleans up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = event_loop_runner()(run(args))
    except KeyboardInterrupt:
        code = 130
    except asyncio.CancelledError:  # SIGTERM
        code = 143
    except Exception:
        traceback.print_exc()
        code = 1
    # A process that used a Temporal client can abort at interpreter exit
    # (temporalio/sdk-python#300): flush and leave without running the exit handlers.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
