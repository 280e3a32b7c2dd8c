"""Score and verdict: critical metrics, Kayenta's half-NoData rule, weights, thresholds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.judge import JudgeConfig, JudgeRequest, LatencyData, MetricJudgement, Thresholds
from core.judge.judge import judge
from core.judge.scoring import score, verdict_of

SLOW = LatencyData(baseline=[0.020 + i * 1e-4 for i in range(100)], canary=[0.030] * 100)
SAME = LatencyData(baseline=[0.020 + i * 1e-4 for i in range(100)], canary=[0.020] * 100)


def _metric(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "kind": "latency", **extra}


def _judge(metrics: list[dict[str, object]], data: dict[str, LatencyData]) -> tuple[float, str]:
    config = JudgeConfig.model_validate({"metrics": metrics})
    result = judge(JudgeRequest(config=config, data=data))  # type: ignore[arg-type]
    return result.score, result.verdict


def test_a_critical_failure_zeroes_the_score() -> None:
    metrics = [_metric("a", critical=True), _metric("b"), _metric("c")]
    assert _judge(metrics, {"a": SLOW, "b": SAME, "c": SAME}) == (0.0, "fail")
    # The same failure, not critical: two of three pass.
    assert _judge(
        [_metric("a"), _metric("b"), _metric("c")], {"a": SLOW, "b": SAME, "c": SAME}
    ) == (
        66.67,
        "fail",
    )


def test_weights_and_thresholds_make_the_verdict() -> None:
    metrics = [_metric("a"), _metric("b", weight=4)]
    assert _judge(metrics, {"a": SLOW, "b": SAME}) == (80.0, "warning")
    assert _judge(metrics, {"a": SAME, "b": SAME}) == (100.0, "pass")


def test_half_the_metrics_without_data_fail_the_judgement() -> None:
    config = JudgeConfig.model_validate({"metrics": [_metric("a"), _metric("b")]})
    result = judge(JudgeRequest(config=config, data={"a": SAME}))
    assert (result.score, result.verdict) == (0.0, "fail")
    assert result.metrics[1].verdict == "nodata"
    assert result.reason == "fail at score 0 (1 of 2 metrics have no data (b))"
    # Too few samples are no data too, said with the figures.
    few = LatencyData(baseline=[0.02] * 3, canary=[0.02] * 200)
    result = judge(JudgeRequest(config=config, data={"a": SAME, "b": few}))
    assert result.metrics[1].reason == (
        "b: no data, 200 vs 3 requests (canary vs baseline), fewer than the 10 needed on each side"
    )


def test_a_metric_may_ignore_missing_data_or_require_it() -> None:
    ignored = [_metric("a"), _metric("b", nodata="ignore")]
    assert _judge(ignored, {"a": SAME}) == (100.0, "pass")
    required = [_metric("a"), _metric("b", nodata="fail"), _metric("c"), _metric("d")]
    assert _judge(required, {"a": SAME, "c": SAME, "d": SAME}) == (75.0, "warning")


def _judged(verdict: str, weight: float, critical: bool, name: str) -> MetricJudgement:
    return MetricJudgement(
        metric=name,
        kind="latency",
        verdict=verdict,  # type: ignore[arg-type]
        critical=critical,
        weight=weight,
        baseline_samples=0,
        canary_samples=0,
        reason="",
    )


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pass", "fail", "nodata"]),
            st.floats(min_value=0.001, max_value=1000),
            st.booleans(),
            st.sampled_from(["count", "fail", "ignore"]),
        ),
        min_size=1,
        max_size=20,
    )
)
@settings(deadline=None)  # two cores shared by several test runs: no timing flakes
def test_the_score_stays_between_0_and_100(metrics: list[tuple[str, float, bool, str]]) -> None:
    config = JudgeConfig.model_validate(
        {
            "metrics": [
                {"name": f"m{i}", "kind": "latency", "weight": w, "critical": c, "nodata": p}
                for i, (_, w, c, p) in enumerate(metrics)
            ]
        }
    )
    judged = [_judged(v, w, c, f"m{i}") for i, (v, w, c, _) in enumerate(metrics)]
    value, why = score(config, judged)
    assert 0 <= value <= 100 and why
    if any(v == "fail" and c for v, _, c, _ in metrics):
        assert value == 0


@given(
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=100),
)
@settings(deadline=None)
def test_the_verdict_is_monotone_in_the_score(a: float, b: float, t1: float, t2: float) -> None:
    thresholds = Thresholds.model_validate({"pass": max(t1, t2), "warning": min(t1, t2)})
    rank = {"fail": 0, "warning": 1, "pass": 2}
    low, high = sorted((a, b))
    assert rank[verdict_of(low, thresholds)] <= rank[verdict_of(high, thresholds)]
