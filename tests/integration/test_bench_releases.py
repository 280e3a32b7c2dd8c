"""The release benchmark (benchmarks/bench_releases.py) runs, at a tiny N, against the test's
own system: both comparisons finish and report figures in a sane range."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.bench_releases import measure
from tests.integration.system import System


async def test_the_release_benchmark_runs_and_reports_sane_figures(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(noop=True)
    lines: list[str] = []
    figures = await measure(
        system.http, system.auth(), system.temporal, n=3, report=lines.append, warmup=False
    )
    assert [f.name.split(" (")[0] for f in figures] == ["one wave", "a chain"]
    for figure in figures:
        assert len(figure.baseline_s) == len(figure.release_s) == 2
        assert all(0 < s < 30 for s in figure.baseline_s + figure.release_s), figure
        # A release does more than its deployments (planning, a parent workflow), but not
        # ten times as much, even on two busy cores.
        assert 0.3 < figure.ratio < 10, figure.line()
    assert len(lines) == 2 and all("ratio" in line for line in lines)
    print("\n" + "\n".join(lines))
