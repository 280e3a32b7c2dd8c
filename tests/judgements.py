"""A real judgement for the views' tests: what the judge answers for a canary v2 30% slower
than v1 with 1 error in 200 requests, latency critical (seeded data shaped like the demo
component's)."""

from __future__ import annotations

import random

from core.judge import JudgeRequest
from core.judge.judge import judge
from core.judge.result import JudgeResult


def slow_canary_judgement() -> JudgeResult:
    rng = random.Random(7)
    baseline = [round(0.020 * rng.lognormvariate(0, 0.25), 6) for _ in range(800)]
    canary = [round(0.026 * rng.lognormvariate(0, 0.25), 6) for _ in range(200)]
    return judge(
        JudgeRequest.model_validate(
            {
                "config": {
                    "metrics": [
                        {"name": "latency", "kind": "latency", "critical": True},
                        {"name": "errors", "kind": "errors"},
                    ]
                },
                "data": {
                    "latency": {"kind": "latency", "baseline": baseline, "canary": canary},
                    "errors": {
                        "kind": "errors",
                        "baseline": {"requests": 800, "errors": 0},
                        "canary": {"requests": 200, "errors": 1},
                    },
                },
                "baseline_label": "v1",
                "canary_label": "v2",
            }
        )
    )
