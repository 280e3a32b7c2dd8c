"""Judge metrics in a deployment request: what the model refuses, how an environment policy's
`judge_verdicts` rewrites every judge metric's `on_verdict` in the plan, and how a rolling
update's analysis stays within the history budget."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.judge.spec import VerdictPolicy
from core.models.analysis import MAX_INLINE_MEASUREMENTS, NO_DATA_RETRIES, AnalysisSpec, MetricSpec
from core.models.deployments import (
    AnalysisStep,
    BlueGreenStrategy,
    CanaryStrategy,
    DeploymentRequest,
    RollingStrategy,
)
from core.models.policies import PolicySpec
from core.policies import has_analysis, strategy_violation, with_required_gates

JUDGE = {"metrics": [{"name": "latency", "kind": "latency"}]}
ERRORS = {"name": "error_rate", "failure_condition": "result > 0.05"}


def judge_metric(name: str = "verdict", **fields: Any) -> dict[str, Any]:
    return {"name": name, "judge": JUDGE, **fields}


def analysis(*metrics: dict[str, Any]) -> dict[str, Any]:
    return {"metrics": list(metrics or [judge_metric(), ERRORS])}


def request(strategy: dict[str, Any]) -> DeploymentRequest:
    return DeploymentRequest.model_validate(
        {"component": "demo", "environment": "prod", "version": "v2", "strategy": strategy}
    )


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"query": "up"}, "query"),
        ({"failure_condition": "result < 90"}, "failure_condition"),
        ({"success_condition": "result > 90"}, "success_condition"),
        ({"slo": "latency"}, "slo"),
    ],
)
def test_a_judge_metric_takes_no_query_condition_or_slo(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        MetricSpec.model_validate(judge_metric(**extra))
    assert f"judge metric 'verdict' takes no `{field}`" in str(refused.value)


def test_a_judge_metric_may_have_any_name_and_counts_in_the_budget() -> None:
    spec = MetricSpec.model_validate(judge_metric("error_rate", count=3))
    assert spec.judge is not None and not spec.judges_requests and spec.slo_name is None
    assert (
        AnalysisSpec.model_validate(analysis(judge_metric(count=5))).budget == 5 + NO_DATA_RETRIES
    )
    with pytest.raises(ValidationError, match="at most 2000"):
        AnalysisSpec.model_validate(analysis(judge_metric(count=2000)))
    with pytest.raises(ValidationError, match="baseline_window is 3600s"):
        MetricSpec.model_validate({"name": "verdict", "judge": {**JUDGE, "baseline_window": "1h"}})


def _verdicts(req: DeploymentRequest) -> list[tuple[str, VerdictPolicy | None]]:
    """Every metric of every analysis of the request, with its verdict policy."""
    s = req.strategy
    found: list[AnalysisSpec] = []
    if isinstance(s, CanaryStrategy):
        found = [x.analysis for x in s.steps if isinstance(x, AnalysisStep)]
        found += [s.analysis] if s.analysis else []
    elif isinstance(s, BlueGreenStrategy):
        found = [a for a in (s.pre_promotion_analysis, s.post_promotion_analysis) if a]
    elif s.analysis is not None:
        found = [s.analysis]
    return [(m.name, m.judge.on_verdict if m.judge else None) for a in found for m in a.metrics]


STRATEGIES: dict[str, dict[str, Any]] = {
    "canary": {
        "type": "canary",
        "steps": [{"set_weight": 20}, {"analysis": analysis()}, {"set_weight": 100}],
        "analysis": analysis(judge_metric("background", interval="10s")),
    },
    "blue_green": {
        "type": "blue_green",
        "pre_promotion_analysis": analysis(),
        "post_promotion_analysis": analysis(),
    },
    "rolling": {"type": "rolling", "analysis": analysis()},
}


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_the_policy_decides_what_every_judge_verdict_does_in_the_plan(kind: str) -> None:
    own = VerdictPolicy(warning="approval", fail="rollback")
    req = request(STRATEGIES[kind])
    policy = PolicySpec(judge_verdicts=VerdictPolicy(warning="continue", fail="approval"))
    planned = with_required_gates(policy, "prod v1", req)
    verdicts = _verdicts(planned)
    judged = [v for _, v in verdicts if v is not None]
    assert judged and all(v == policy.judge_verdicts for v in judged)
    assert ("error_rate", None) in verdicts  # other metrics are left alone
    assert all(v == own for _, v in _verdicts(req) if v is not None)  # the request is not changed
    # The plan is still a valid request, and says so when read back (as the status shows it).
    again = DeploymentRequest.model_validate(planned.model_dump(mode="json", by_alias=True))
    assert _verdicts(again) == verdicts


def test_without_judge_verdicts_the_metric_keeps_its_own() -> None:
    req = request(
        {
            "type": "rolling",
            "analysis": analysis(
                {"name": "verdict", "judge": {**JUDGE, "on_verdict": {"warning": "rollback"}}}
            ),
        }
    )
    planned = with_required_gates(PolicySpec(), "prod v1", req)
    assert _verdicts(planned) == [("verdict", VerdictPolicy(warning="rollback"))]


def test_a_rolling_update_with_an_analysis_meets_require_analysis() -> None:
    policy = PolicySpec(require_analysis=True)
    assert has_analysis(request({"type": "rolling", "analysis": analysis()}))
    assert strategy_violation(policy, request({"type": "rolling", "analysis": analysis()})) is None
    refused = strategy_violation(policy, request({"type": "rolling"}))
    assert refused is not None and "rolling update's is `analysis`" in refused.message


def test_a_rolling_analysis_runs_after_every_batch_while_the_history_allows() -> None:
    small = RollingStrategy.model_validate({"analysis": analysis(judge_metric(count=3))})
    assert small.analysed_batches(5) == [1, 2, 3, 4, 5]
    # 100 batches of an analysis that may take 130 measurements: evenly spaced ones, the last
    # always among them, within the budget.
    big = RollingStrategy.model_validate({"analysis": analysis(judge_metric(count=100))})
    chosen = big.analysed_batches(100)
    assert chosen[-1] == 100
    assert len(chosen) * big.analysis.budget <= MAX_INLINE_MEASUREMENTS  # type: ignore[union-attr]
    assert len(chosen) == MAX_INLINE_MEASUREMENTS // 130
    assert RollingStrategy().analysed_batches(10) == []
