"""`r2c load`: a lean HTTP load generator that reports results by component version.

Open loop: request i is due at start + i/rps whatever happened to the ones before, and its
latency counts from when it was due, so a stalled server shows up in the figures instead of
quietly slowing the generator down. Raw asyncio streams and httptools keep the generator's own
CPU cost low on a small machine.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
from pydantic import BaseModel


class VersionSummary(BaseModel):
    requests: int
    ok: int
    failed: int
    p50_ms: float | None
    p99_ms: float | None


class LoadReport(BaseModel):
    url: str
    target_rps: float
    duration_s: float
    requests: int
    ok: int
    failed: int
    achieved_rps: float
    p50_ms: float | None
    p99_ms: float | None
    by_version: dict[str, VersionSummary]
    errors: dict[str, int]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000, 3)


@dataclass
class _Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, version: str, seconds: float, ok: bool, error: str | None = None) -> None:
        self.latencies[version].append(seconds)
        if not ok:
            self.failures[version] += 1
            self.errors[error or "failed"] += 1


class _Response:
    """httptools callbacks for one response: status, version header, completion."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done = False
        self.version = "unknown"
        self.status = 0
        self.keep_alive = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"x-component-version":
            self.version = value.decode(errors="replace")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.done = True


async def _one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> _Response:
    writer.write(request)
    response = _Response()
    while not response.done:
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        response.parser.feed_data(chunk)
    return response


async def run_load(
    url: str, rps: float, duration: float, concurrency: int = 64, request_timeout: float = 10.0
) -> LoadReport:
    """Send `rps` GET requests a second to `url` for `duration` seconds; report by version."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: r2c-load\r\n\r\n"
    raw = request.encode()
    total = max(1, int(rps * duration))
    tickets: asyncio.Queue[float | None] = asyncio.Queue()
    tally = _Tally()

    async def schedule(start: float) -> None:
        for i in range(total):
            due = start + i / rps
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tickets.put_nowait(due)
        for _ in range(concurrency):
            tickets.put_nowait(None)

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while (due := await tickets.get()) is not None:
                try:
                    if conn is None:
                        conn = await asyncio.wait_for(
                            asyncio.open_connection(host, port), request_timeout
                        )
                    response = await asyncio.wait_for(_one(*conn, raw), request_timeout)
                except (OSError, TimeoutError, httptools.HttpParserError) as err:
                    if conn is not None:
                        conn[1].close()
                    conn = None
                    tally.record("none", time.perf_counter() - due, False, _describe(err))
                    continue
                ok = response.status < 500
                tally.record(
                    response.version,
                    time.perf_counter() - due,
                    ok,
                    None if ok else f"HTTP {response.status}",
                )
                if not response.keep_alive:
                    conn[1].close()
                    conn = None
        finally:  # a cancelled load closes its connections too
            if conn is not None:
                conn[1].close()

    start = time.perf_counter()
    await asyncio.gather(schedule(start), *(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return _report(url, rps, duration, elapsed, tally)


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timeout"
    return f"{type(err).__name__}: {err}"[:120]


def _report(url: str, rps: float, duration: float, elapsed: float, tally: _Tally) -> LoadReport:
    everything = [x for values in tally.latencies.values() for x in values]
    by_version = {
        version: VersionSummary(
            requests=len(values),
            ok=len(values) - tally.failures[version],
            failed=tally.failures[version],
            p50_ms=_percentile(values, 50),
            p99_ms=_percentile(values, 99),
        )
        for version, values in sorted(tally.latencies.items())
    }
    failed = sum(tally.failures.values())
    return LoadReport(
        url=url,
        target_rps=rps,
        duration_s=duration,
        requests=len(everything),
        ok=len(everything) - failed,
        failed=failed,
        achieved_rps=round(len(everything) / elapsed, 1) if elapsed else 0.0,
        p50_ms=_percentile(everything, 50),
        p99_ms=_percentile(everything, 99),
        by_version=by_version,
        errors=dict(tally.errors.most_common(10)),
    )


def render_table(report: LoadReport) -> str:
    """The report as a table for a terminal."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = [
        f"{report.url}: {report.requests} requests in {report.duration_s:g}s "
        f"(target {report.target_rps:g}/s, achieved {report.achieved_rps:g}/s)",
        "",
        f"{'version':<16} {'requests':>9} {'ok':>9} {'failed':>7} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    rows: list[tuple[str, Any]] = [*report.by_version.items()]
    rows.append(
        (
            "all",
            VersionSummary(
                requests=report.requests,
                ok=report.ok,
                failed=report.failed,
                p50_ms=report.p50_ms,
                p99_ms=report.p99_ms,
            ),
        )  # fmt: skip
    )
    for name, s in rows:
        lines.append(
            f"{name[:16]:<16} {s.requests:>9} {s.ok:>9} {s.failed:>7} "
            f"{ms(s.p50_ms):>8} {ms(s.p99_ms):>8}"
        )
    if report.errors:
        lines += ["", "errors:"] + [f"  {n:>6} x {e}" for e, n in report.errors.items()]
    return "\n".join(lines)
