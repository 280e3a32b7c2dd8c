"""Benchmark: what the router's per-version samples cost (time per request, memory).

    python -m benchmarks.bench_router_samples [--seconds 5] [--rounds 2] [--connections 16]

- observe: the cost of one `RouterSamples.observe` in the process (reservoir filling, and full:
  the steady state of a busy bucket), against the router's time per request;
- throughput: one demo instance behind two routers started the same way, one keeping samples
  and one whose `observe` is a no-op (the router before samples), driven by `wrk` in
  alternating ABBA rounds: the ratio with/without is what keeping samples costs end to end;
  and the routers' CPU time per request (from /proc), which the machine's load disturbs less
  than throughput does. `--control` runs both routers without samples (an A/A run): the
  difference it shows is the noise to read the A/B difference against;
- memory: every version, bucket and reservoir full, measured with tracemalloc, against the
  documented bound (4 B x 1,000 samples x 180 buckets x 16 versions).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from activities.infrastructure.local.router import samples as s
from benchmarks.bench_router import WrkResult, _wait_http, wrk
from cli.processes import free_port
from tests.integration.router_fixture import write_one_backend_table

ROUTER = """import asyncio, sys
from pathlib import Path
from activities.infrastructure.local.router import samples
from activities.infrastructure.local.router.main import run_router
table, port, keep = sys.argv[1:]
if keep == "no":
    samples.RouterSamples.observe = lambda *args, **kwargs: None
sys.exit(asyncio.run(run_router(Path(table), "127.0.0.1", int(port))))
"""


def observe_ns(calls: int = 300_000) -> tuple[float, float]:
    """(ns per observe while the reservoir fills, ns per observe once it is full)."""
    rs = s.RouterSamples()
    now = time.time()
    start = time.perf_counter_ns()
    for i in range(s.PER_BUCKET):
        rs.observe("v1", 200, 0.001 * (i % 50), now)
    filling = (time.perf_counter_ns() - start) / s.PER_BUCKET
    start = time.perf_counter_ns()
    for i in range(calls):
        rs.observe("v1", 200, 0.001 * (i % 50), now)
    full = (time.perf_counter_ns() - start) / calls
    # As the router calls it: without `now`, reading the clock itself.
    start = time.perf_counter_ns()
    for i in range(calls):
        rs.observe("v1", 200, 0.001 * (i % 50))
    return filling, max(full, (time.perf_counter_ns() - start) / calls)


def memory_bytes() -> tuple[int, int]:
    """(bytes used with every version, bucket and reservoir full, the samples alone)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rs = s.RouterSamples()
    t0 = int(time.time())
    for v in range(s.MAX_VERSIONS):
        ring = rs.versions.setdefault(f"v{v}", s.VersionRing())
        for k in range(s.BUCKETS):
            bucket = ring.bucket(t0 + 10 * k)
            bucket.latencies.extend([1] * s.PER_BUCKET)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used, s.SAMPLE_BYTES * s.PER_BUCKET * s.BUCKETS * s.MAX_VERSIONS


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def routers(tmp: Path, control: bool = False) -> Iterator[dict[str, tuple[str, int]]]:
    """A demo instance behind a router with samples and one without; their URLs and pids."""
    instance = free_port()
    ports = {"with": free_port(), "without": free_port()}
    table = tmp / "routes.json"
    write_one_backend_table(table, "bench", instance, environment="perf")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cli", "demo", "serve", "--port", str(instance)],
        ),
        *(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    ROUTER,
                    str(table),
                    str(port),
                    "yes" if kind == "with" and not control else "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for kind, port in ports.items()
        ),
    ]
    try:
        urls = {kind: f"http://127.0.0.1:{port}/" for kind, port in ports.items()}
        _wait_http(f"http://127.0.0.1:{instance}/", procs[0], 30)
        for proc, url in zip(procs[1:], urls.values(), strict=True):
            _wait_http(url, proc, 30)
        yield {
            kind: (url, proc.pid) for (kind, url), proc in zip(urls.items(), procs[1:], strict=True)
        }
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--control", action="store_true", help="A/A: both without samples")
    args = parser.parse_args()

    filling, full = observe_ns()
    print(f"observe: {filling:.0f} ns per request while a reservoir fills, {full:.0f} ns once full")
    used, bound = memory_bytes()
    print(
        f"memory, all full: {used / 1e6:.1f} MB measured; samples alone {bound / 1e6:.1f} MB "
        f"({s.SAMPLE_BYTES} B x {s.PER_BUCKET} x {s.BUCKETS} buckets x {s.MAX_VERSIONS} versions)"
    )
    if shutil.which("wrk") is None:
        print("error: wrk is not installed (apt-get install wrk)")
        return 2
    results: dict[str, list[WrkResult]] = {"with": [], "without": []}
    cpu_us: dict[str, list[float]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as tmp, routers(Path(tmp), args.control) as found:
        for url, _ in found.values():
            wrk(url, 3, args.connections)  # warm-up
        for i in range(args.rounds * 2):
            for kind in ("with", "without") if i % 2 == 0 else ("without", "with"):
                url, pid = found[kind]
                cpu = cpu_seconds(pid)
                r = wrk(url, args.seconds, args.connections)
                per_request = (cpu_seconds(pid) - cpu) / (r.rps * round(args.seconds)) * 1e6
                results[kind].append(r)
                cpu_us[kind].append(per_request)
                print(
                    f"samples {kind:<7} c={args.connections:<3} {r.rps:>9.0f} req/s  "
                    f"p50 {r.p50_ms:6.3f} ms  p99 {r.p99_ms:6.3f} ms  errors {r.errors}  "
                    f"router CPU {per_request:5.1f} us/request",
                    flush=True,
                )
    with_rps = statistics.median(r.rps for r in results["with"])
    without_rps = statistics.median(r.rps for r in results["without"])
    with_cpu, without_cpu = (statistics.median(cpu_us[k]) for k in ("with", "without"))
    print()
    print(
        f"throughput, {args.connections} connections: without samples {without_rps:.0f} req/s, "
        f"with {with_rps:.0f} req/s -> ratio {with_rps / without_rps:.3f}"
    )
    print(
        f"router CPU per request: without {without_cpu:.1f} us, with {with_cpu:.1f} us -> "
        f"{with_cpu - without_cpu:+.1f} us ({(with_cpu / without_cpu - 1) * 100:+.1f}%); "
        f"observe alone: {full / 1000:.2f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
