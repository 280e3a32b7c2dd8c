"""Hostile input to the judge is refused with the field and a reason; big input stays fast."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.judge import (
    MAX_SAMPLES,
    ErrorCounts,
    ErrorData,
    JudgeConfig,
    JudgeRequest,
    LatencyData,
)
from core.judge.judge import judge

CONFIG = {"metrics": [{"name": "latency", "kind": "latency"}]}


def _refusal(payload: dict[str, object]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        JudgeRequest.model_validate(payload)
    error = caught.value.errors()[0]
    return ".".join(str(p) for p in error["loc"]), error["msg"]


def _latency(baseline: list[object], canary: list[object] | None = None) -> dict[str, object]:
    data = {"kind": "latency", "baseline": baseline, "canary": canary or [0.02]}
    return {"config": CONFIG, "data": {"latency": data}}


@pytest.mark.parametrize(
    ("payload", "where", "words"),
    [
        (_latency([0.02, float("nan")]), "data.latency.latency.baseline.1", "finite number"),
        (_latency([float("inf")]), "data.latency.latency.baseline.0", "finite number"),
        (_latency([-0.001]), "data.latency.latency.baseline.0", "greater than or equal to 0"),
        (_latency([0.02] * (MAX_SAMPLES + 1)), "data.latency.latency.baseline", "at most 10000"),
        (
            {
                "config": {"metrics": [{"name": "errors", "kind": "errors"}]},
                "data": {
                    "errors": {
                        "kind": "errors",
                        "baseline": {"requests": 10, "errors": 11},
                        "canary": {"requests": 10, "errors": 0},
                    }
                },
            },
            "data.errors.errors.baseline",
            "errors are counted among the requests",
        ),
        (
            {"config": CONFIG, "data": {"other": {"kind": "series", "baseline": [], "canary": []}}},
            "",
            "not a metric of the configuration",
        ),
        (
            {
                "config": CONFIG,
                "data": {"latency": {"kind": "series", "baseline": [], "canary": []}},
            },
            "",
            "its data is 'series'",
        ),
        (
            {"config": {"metrics": [{"name": "a", "kind": "latency"}] * 2}},
            "config",
            "unique",
        ),
        (
            {"config": {"metrics": [{"name": "e", "kind": "errors", "tolerance": 2}]}},
            "config.metrics.0",
            "absolute error rate, at most 1",
        ),
        (
            {"config": {"metrics": [{"name": "s", "kind": "series", "tail_quantile": 0.99}]}},
            "config.metrics.0",
            "belongs to latency metrics",
        ),
        (
            {"config": {**CONFIG, "thresholds": {"pass": 70, "warning": 80}}},
            "config.thresholds",
            "must not be above the pass threshold",
        ),
        (
            {"config": {"metrics": [{"name": "l", "kind": "latency", "confidence": 1}]}},
            "config.metrics.0.confidence",
            "less than or equal to 0.9999",
        ),
        (
            {"config": {"metrics": [{"name": f"m{i}", "kind": "latency"} for i in range(21)]}},
            "config.metrics",
            "at most 20",
        ),
    ],
)
def test_hostile_input_is_refused_with_its_field(
    payload: dict[str, object], where: str, words: str
) -> None:
    field, message = _refusal(payload)
    assert field == where
    assert words in message


def test_the_largest_input_is_judged_in_well_under_a_second() -> None:
    config = JudgeConfig.model_validate(CONFIG)
    baseline = [0.02 + (i % 97) * 1e-4 for i in range(MAX_SAMPLES)]
    canary = [0.025 + (i % 89) * 1e-4 for i in range(MAX_SAMPLES)]
    started = time.perf_counter()
    result = judge(
        JudgeRequest(config=config, data={"latency": LatencyData(baseline=baseline, canary=canary)})
    )
    assert time.perf_counter() - started < 1.0
    assert result.metrics[0].verdict == "fail"
    assert "10,000 vs 10,000 requests" in result.metrics[0].reason


# Few distinct values, zeros included: ties and degenerate samples are where rank tests and
# quantiles misbehave.
LATENCIES = st.lists(st.sampled_from([0.0, 0.001, 0.02, 0.02, 0.05, 3600.0]), max_size=40)


@given(
    LATENCIES,
    LATENCIES,
    st.sampled_from(["increase", "decrease", "either"]),
    st.integers(0, 50),
    st.integers(1, 50),
    st.integers(0, 50),
    st.integers(1, 50),
)
@settings(max_examples=150, deadline=None)
def test_any_valid_input_gets_a_judgement(
    baseline: list[float],
    canary: list[float],
    direction: str,
    base_errors: int,
    base_extra: int,
    canary_errors: int,
    canary_extra: int,
) -> None:
    config = JudgeConfig.model_validate(
        {
            "metrics": [
                {"name": "latency", "kind": "latency", "direction": direction, "min_samples": 1},
                {"name": "errors", "kind": "errors", "direction": direction, "min_samples": 1},
            ]
        }
    )
    errors = ErrorData(
        baseline=ErrorCounts(requests=base_errors + base_extra, errors=base_errors),
        canary=ErrorCounts(requests=canary_errors + canary_extra, errors=canary_errors),
    )
    result = judge(
        JudgeRequest(
            config=config,
            data={"latency": LatencyData(baseline=baseline, canary=canary), "errors": errors},
        )
    )
    assert 0 <= result.score <= 100
    for metric in result.metrics:
        assert metric.reason.startswith(metric.metric)
        assert (metric.verdict == "fail") == (metric.deviation is not None)
