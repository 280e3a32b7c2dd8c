"""The judge's tests on data shaped like the demo component's: what fails, what passes, why."""

from __future__ import annotations

import numpy as np
import pytest

from core.judge import (
    ErrorCounts,
    ErrorData,
    JudgeConfig,
    JudgeRequest,
    LatencyData,
    SeriesData,
)
from core.judge import hodges_lehmann as hl
from core.judge.judge import judge

LATENCY = {"name": "latency", "kind": "latency"}
ERRORS = {"name": "errors", "kind": "errors"}


def _latencies(seed: int, n: int, factor: float = 1.0) -> list[float]:
    """About 20 ms with jitter, like the demo component behind the router."""
    rng = np.random.default_rng(seed)
    return (0.020 * factor * rng.lognormal(0.0, 0.25, n)).tolist()


def _one(metric: dict[str, object], data: object, **labels: str) -> JudgeRequest:
    config = JudgeConfig.model_validate({"metrics": [metric]})
    return JudgeRequest(
        config=config,
        data={str(metric["name"]): data},  # type: ignore[dict-item]
        baseline_label=labels.get("baseline", "v1"),
        canary_label=labels.get("canary", "v2"),
    )


def test_thirty_percent_slower_fails_and_says_so() -> None:
    data = LatencyData(baseline=_latencies(1, 200), canary=_latencies(2, 200, 1.3))
    result = judge(_one(LATENCY, data))
    metric = result.metrics[0]
    assert (result.verdict, metric.verdict, metric.deviation) == ("fail", "fail", "high")
    assert metric.shift is not None and 0.2 < (metric.shift.relative or 0) < 0.4
    assert metric.shift.low > 0  # the whole interval is a slowdown
    assert metric.reason.startswith("latency of v2 is ")
    assert "% above v1's (median " in metric.reason
    assert "200 vs 200 requests" in metric.reason
    assert "Mann-Whitney p<0.0001" in metric.reason
    assert metric.reason.endswith("fails: shift and tail above the 10% tolerance")


def test_a_grown_tail_with_the_same_median_fails() -> None:
    # kayenta#780: the slowest 10% of the canary's requests take three times as long; its
    # median does not move, and Mann-Whitney alone passes it.
    baseline = np.array(_latencies(3, 500))
    canary = np.array(_latencies(4, 500))
    cut = np.quantile(canary, 0.9)
    canary = np.where(canary > cut, canary * 3, canary)
    data = LatencyData(baseline=baseline.tolist(), canary=canary.tolist())
    metric = judge(_one(LATENCY, data)).metrics[0]
    assert metric.verdict == "fail" and metric.deviation == "high"
    assert metric.tail is not None and metric.tail.failed and metric.tail.quantile == 0.95
    assert metric.p_value is not None and metric.p_value > 0.05  # the rank test saw nothing
    assert "fails: tail above the 10% tolerance" in metric.reason
    assert "beyond the pooled p95, Fisher p<0.0001" in metric.reason


def test_one_percent_errors_against_a_clean_stable_version_fail() -> None:
    # kayenta#426. The canary at 20% of 5,000 requests: 1,000 requests, 1% of them fail;
    # the stable version's 4,000 requests have none.
    data = ErrorData(
        baseline=ErrorCounts(requests=4000, errors=0), canary=ErrorCounts(requests=1000, errors=10)
    )
    metric = judge(_one(ERRORS, data)).metrics[0]
    assert (metric.verdict, metric.deviation, metric.test) == ("fail", "high", "Fisher's exact")
    assert metric.reason == (
        "errors: v2 failed 1.00% of its requests, v1 0.00% (10 of 1,000 vs 0 of 4,000 requests);"
        " Fisher's exact p<0.0001; fails: 1 percentage points more, beyond the 0.1"
        " percentage point tolerance"
    )
    # One error is no evidence: it could be chance.
    one = data.model_copy(update={"canary": ErrorCounts(requests=1000, errors=1)})
    assert judge(_one(ERRORS, one)).metrics[0].verdict == "pass"


def test_bernoulli_errors_at_one_percent_are_caught_with_a_thousand_canary_requests() -> None:
    caught = 0
    for seed in range(50):
        errors = int((np.random.default_rng(seed).random(1000) < 0.01).sum())
        data = ErrorData(
            baseline=ErrorCounts(requests=4000, errors=0),
            canary=ErrorCounts(requests=1000, errors=errors),
        )
        caught += judge(_one(ERRORS, data)).verdict == "fail"
    assert caught >= 48


def test_identical_versions_pass_at_least_98_percent_of_1000_seeded_runs() -> None:
    config = JudgeConfig.model_validate({"metrics": [LATENCY, ERRORS]})
    fails = 0
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        n = 100
        request = JudgeRequest.model_construct(
            config=config,
            data={
                "latency": LatencyData.model_construct(
                    kind="latency",
                    baseline=(0.02 * rng.lognormal(0, 0.25, n)).tolist(),
                    canary=(0.02 * rng.lognormal(0, 0.25, n)).tolist(),
                ),
                "errors": ErrorData(
                    baseline=ErrorCounts(requests=n, errors=int((rng.random(n) < 0.01).sum())),
                    canary=ErrorCounts(requests=n, errors=int((rng.random(n) < 0.01).sum())),
                ),
            },
            baseline_label="v1",
            canary_label="v2",
        )
        fails += judge(request).verdict == "fail"
        if seed == 49:
            assert fails <= 1  # the 49 of 50
    assert fails <= 20


@pytest.mark.parametrize(
    ("direction", "factor", "verdict", "deviation"),
    [
        ("increase", 1.3, "fail", "high"),
        ("increase", 0.7, "pass", None),
        ("decrease", 1.3, "pass", None),
        ("decrease", 0.7, "fail", "low"),
        ("either", 1.3, "fail", "high"),
        ("either", 0.7, "fail", "low"),
    ],
)
def test_each_direction_fails_only_the_change_it_calls_bad(
    direction: str, factor: float, verdict: str, deviation: str | None
) -> None:
    data = LatencyData(baseline=_latencies(5, 300), canary=_latencies(6, 300, factor))
    metric = judge(_one({**LATENCY, "direction": direction}, data)).metrics[0]
    assert (metric.verdict, metric.deviation) == (verdict, deviation)


def test_a_series_that_dropped_fails_a_decrease_metric() -> None:
    rng = np.random.default_rng(7)
    data = SeriesData(
        baseline=rng.normal(100, 5, 60).tolist(), canary=rng.normal(80, 5, 60).tolist()
    )
    metric = judge(_one({"name": "throughput", "kind": "series", "direction": "decrease"}, data))
    judged = metric.metrics[0]
    assert (judged.verdict, judged.deviation, judged.tail) == ("fail", "low", None)
    assert "throughput of v2 is 20% below v1's" in judged.reason
    assert "60 vs 60 samples" in judged.reason


def test_the_tolerance_lets_a_significant_small_slowdown_pass() -> None:
    # 3,000 requests a side make +5% highly significant; 10% is tolerated, 2% is not.
    data = LatencyData(baseline=_latencies(8, 3000), canary=_latencies(9, 3000, 1.05))
    tolerated = judge(_one(LATENCY, data)).metrics[0]
    assert tolerated.verdict == "pass" and (tolerated.p_value or 1) < 0.0001
    assert "passes: no significant change beyond the 10% tolerance" in tolerated.reason
    strict = judge(_one({**LATENCY, "tolerance": 0.02}, data)).metrics[0]
    assert strict.verdict == "fail"


def test_the_hodges_lehmann_shift_by_bisection_matches_the_direct_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    canary, baseline = np.array(_latencies(10, 301, 1.2)), np.array(_latencies(11, 200))
    direct = hl.hodges_lehmann(canary, baseline, 0.99)
    monkeypatch.setattr(hl, "DIRECT_PAIRS", 0)
    bisected = hl.hodges_lehmann(canary, baseline, 0.99)
    for field in ("shift", "low", "high"):
        assert getattr(bisected, field) == pytest.approx(getattr(direct, field), rel=1e-9)
    assert direct.low < direct.shift < direct.high


def test_constant_samples_on_both_sides_pass() -> None:
    data = LatencyData(baseline=[0.02] * 50, canary=[0.02] * 50)
    metric = judge(_one(LATENCY, data)).metrics[0]
    assert metric.verdict == "pass" and metric.p_value == 1.0
