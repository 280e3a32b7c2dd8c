"""What the judge's end-to-end tests share: demo versions shaped by their latency, jitter and
error rate, load that runs until told to stop, judge metrics, and a standalone router in front
of two demo processes with 1 s sample buckets (for judging many windows without deploying).

The demo's latency is a lognormal draw per request (mean DEMO_LATENCY_MS, standard deviation
DEMO_LATENCY_JITTER_MS), so two versions of the same settings differ only by noise, as the
judge's false-positive rate needs them to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.test_router_samples import two_versions


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

    def numbers(shape: Shape) -> tuple[float, float, float]:
        return shape.latency_ms, shape.jitter_ms, shape.error_rate

    with two_versions(tmp, numbers(stable), numbers(canary_shape), weight) as found:
        yield found[0], found[1]
