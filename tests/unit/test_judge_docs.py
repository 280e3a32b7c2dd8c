"""docs/judge.md's examples are what the API accepts: both deployment requests (a canary and a
rolling update with judge metrics), the series metric, and the rolling budget it states."""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.judge.config import JudgeMetric
from core.models.analysis import AnalysisSpec
from core.models.deployments import CanaryStrategy, DeploymentRequest, RollingStrategy

DOC = Path(__file__).resolve().parents[2] / "docs" / "judge.md"


def json_blocks() -> list[object]:
    text = DOC.read_text(encoding="utf-8")
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]


def test_the_deployment_examples_are_valid_requests() -> None:
    requests = [
        DeploymentRequest.model_validate(b)
        for b in json_blocks()
        if isinstance(b, dict) and "strategy" in b
    ]
    assert [r.strategy.type for r in requests] == ["canary", "rolling"]
    canary, rolling = (r.strategy for r in requests)
    assert isinstance(canary, CanaryStrategy) and isinstance(rolling, RollingStrategy)
    assert rolling.analysis is not None and rolling.analysis.metrics[0].judge is not None
    assert rolling.analysis.metrics[0].judge.resolved_baseline("rolling") == "before"
    assert rolling.analysed_batches(3) == [1, 2, 3]  # after each batch


def test_the_series_metric_and_the_budget_it_states() -> None:
    (series,) = [b for b in json_blocks() if isinstance(b, dict) and b.get("kind") == "series"]
    assert JudgeMetric.model_validate(series).query is not None
    # "budget 2 + 30 = 32 ... at most 62 analyses, so 100 batches are analysed after every
    # second batch"
    analysis = AnalysisSpec.model_validate(
        {"metrics": [{"name": "judge", "interval": "15s", "count": 2, "judge": {"metrics": [
            {"name": "latency", "kind": "latency"}]}}]}
    )  # fmt: skip
    assert analysis.budget == 32
    batches = RollingStrategy(batch_size=1, analysis=analysis).analysed_batches(100)
    assert batches == list(range(2, 101, 2))
