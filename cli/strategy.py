"""`r2c deploy`'s shorthand for a canary: `--canary 20,50,100 --pause 30s --analysis
'error_rate<0.05'` becomes the strategy body POST /api/v1/deployments takes (core/models/
deployments.py): each weight but the last is followed by the pause and the analysis."""

from __future__ import annotations

import re
from typing import Any

from core.models.analysis import BUILTIN_METRICS

MAX_WEIGHTS = 20
_ANALYSIS = re.compile(
    r"^\s*([a-z][a-z0-9_]{0,62})\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+(?:e-?\d+)?)\s*$"
)
_DURATION = re.compile(r"^(\d{1,6}(\.\d+)?(ms|s|m|h|d)){1,4}$")


class UsageError(ValueError):
    """Bad command-line input: exit code 2 with this message."""


def parse_weights(text: str) -> list[int]:
    try:
        weights = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--canary {text!r}: weights are integers, e.g. 20,50,100") from None
    if not weights or len(weights) > MAX_WEIGHTS:
        raise UsageError(f"--canary: 1 to {MAX_WEIGHTS} weights, e.g. 20,50,100")
    if any(not 0 < w <= 100 for w in weights) or weights != sorted(set(weights)):
        raise UsageError("--canary: weights rise from 1 to 100, each once, e.g. 20,50,100")
    if weights[-1] != 100:
        weights.append(100)
    return weights


def parse_analysis(text: str, interval: str = "10s", count: int = 3) -> dict[str, Any]:
    """`error_rate<0.05` -> a built-in metric whose success condition is `result < 0.05`;
    several metrics are separated by commas."""
    metrics: list[dict[str, Any]] = []
    for part in text.split(","):
        match = _ANALYSIS.match(part)
        if match is None:
            raise UsageError(
                f"--analysis {part.strip()!r}: write METRIC<THRESHOLD (or <=, >, >=), e.g. "
                f"error_rate<0.05; metrics: {', '.join(BUILTIN_METRICS)}"
            )
        name, op, threshold = match.groups()
        if name not in BUILTIN_METRICS:
            raise UsageError(
                f"--analysis: unknown metric {name!r}; built-in: {', '.join(BUILTIN_METRICS)}"
                " (a PromQL metric goes in a strategy file, -f)"
            )
        if any(m["name"] == name for m in metrics):
            raise UsageError(f"--analysis: metric {name!r} given twice")
        metrics.append(
            {
                "name": name,
                "success_condition": f"result {op} {threshold}",
                "interval": interval,
                "count": count,
            }
        )
    return {"metrics": metrics}


def check_duration(text: str, flag: str) -> str:
    if not _DURATION.match(text.strip()):
        raise UsageError(f"{flag} {text!r}: a duration such as 30s, 2m or 1h")
    return text.strip()


def canary_strategy(
    weights: list[int],
    pause: str | None = None,
    analysis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i, weight in enumerate(weights):
        steps.append({"set_weight": weight})
        if i == len(weights) - 1:
            break
        if pause is not None:
            steps.append({"pause": {"duration": pause}})
        if analysis is not None:
            steps.append({"analysis": analysis})
    return {"type": "canary", "steps": steps}
