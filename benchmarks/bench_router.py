"""Benchmark: what the local router costs, against direct requests to one instance.

    python -m benchmarks.bench_router [--seconds 5] [--rounds 2] [--connections 16]

Starts one demo instance and a router in front of it (the same processes the local provider
starts), then drives both with `wrk` (Debian package `wrk`) in alternating ABBA rounds:
- latency: one connection, one request at a time, so p50 is the cost of a request, not of
  queueing; the router's added p50 is the difference;
- throughput: `--connections` connections flat out; the ratio router/direct is the share of
  the direct throughput the router keeps on this machine (the router, the instance and wrk
  share the same cores).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from cli.processes import free_port
from tests.integration.router_fixture import write_one_backend_table

UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNIT[unit]


def wrk(url: str, seconds: float, connections: int) -> WrkResult:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = sum(
        int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|errors: .*?):?\s+(\d+)", out)
    )
    return WrkResult(rps, p50, p99, errors)


def _wait_http(url: str, proc: subprocess.Popen[bytes], within: float = 15) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {within}s")


@contextlib.contextmanager
def servers(tmp: Path) -> Iterator[tuple[str, str]]:
    """A demo instance and a router in front of it; yields (direct URL, router URL)."""
    instance_port, router_port = free_port(), free_port()
    table = tmp / "routes.json"
    write_one_backend_table(table, "bench", instance_port, environment="perf")
    cli = [sys.executable, "-m", "cli"]
    procs = [
        subprocess.Popen([*cli, "demo", "serve", "--port", str(instance_port), "--version", "v1"]),
        subprocess.Popen(
            [*cli, "router", "--table", str(table), "--port", str(router_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),  # fmt: skip
    ]
    try:
        direct, routed = f"http://127.0.0.1:{instance_port}/", f"http://127.0.0.1:{router_port}/"
        _wait_http(direct, procs[0])
        _wait_http(routed, procs[1])
        yield direct, routed
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
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("error: wrk is not installed (apt-get install wrk)")
        return 2
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp)) as (direct, routed):
        urls = {"direct": direct, "router": routed}
        wrk(direct, 1, args.connections)  # warm-up
        wrk(routed, 1, args.connections)
        results: dict[tuple[str, str], list[WrkResult]] = {}
        for kind, connections in (("latency", 1), ("throughput", args.connections)):
            for i in range(args.rounds * 2):
                order = ["direct", "router"] if i % 2 == 0 else ["router", "direct"]
                for path in order:
                    r = wrk(urls[path], args.seconds, connections)
                    results.setdefault((kind, path), []).append(r)
                    print(
                        f"{kind:<10} {path:<6} c={connections:<3} {r.rps:>9.0f} req/s  "
                        f"p50 {r.p50_ms:6.3f} ms  p99 {r.p99_ms:6.3f} ms  errors {r.errors}",
                        flush=True,
                    )

    def med(kind: str, path: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in results[(kind, path)])

    lat_direct, lat_router = med("latency", "direct", "p50_ms"), med("latency", "router", "p50_ms")
    p99_ratio = med("latency", "router", "p99_ms") / med("latency", "direct", "p99_ms")
    rps_direct, rps_router = med("throughput", "direct", "rps"), med("throughput", "router", "rps")
    busy_p50 = med("throughput", "router", "p50_ms") / med("throughput", "direct", "p50_ms")
    print()
    print(
        f"latency, one connection: p50 direct {lat_direct:.3f} ms, router {lat_router:.3f} ms"
        f" -> added p50 {lat_router - lat_direct:.3f} ms (aim: under 1 ms); p99 ratio"
        f" router/direct {p99_ratio:.2f}"
    )
    print(
        f"throughput, {args.connections} connections: direct {rps_direct:.0f} req/s, router"
        f" {rps_router:.0f} req/s -> ratio {rps_router / rps_direct:.2f} (aim: 0.7 or more);"
        f" p50 ratio under load {busy_p50:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
