"""The rules of environment policies without a server: CEL rules (compiled, bounded, refused
when unusable), freeze windows at their boundaries, strategy limits, and the gates a policy
adds to a deployment's plan."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from core import policies as rules
from core.models.deployments import (
    ApprovalStep,
    BlueGreenStrategy,
    CanaryStrategy,
    DeploymentRequest,
    RollingStrategy,
    SetWeightStep,
)
from core.models.policies import (
    FreezeWindow,
    PolicyRule,
    PolicySpec,
    RequiredApproval,
    WeeklyFreezeWindow,
)

# 2026-11-27 is a Friday.
FRIDAY_NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def canary(*weights: int, **extra: Any) -> DeploymentRequest:
    steps = [SetWeightStep(set_weight=w) for w in weights]
    return DeploymentRequest(
        component="demo",
        environment="prod",
        version="2.0",
        strategy=CanaryStrategy(steps=steps, **extra),
    )


def canary_with_approval(approval: dict[str, Any]) -> DeploymentRequest:
    """A canary to 20 then 100 with the request's own approval step between them."""
    own = canary(20, 100).strategy.model_dump()
    own["steps"].insert(1, {"approval": approval})
    return DeploymentRequest(
        component="demo",
        environment="prod",
        version="2.0",
        strategy=CanaryStrategy.model_validate(own),
    )


def context(req: DeploymentRequest, role: str = "operator") -> dict[str, Any]:
    return rules.deployment_context(req, "apikey:alice", role, FRIDAY_NOON)


# ----------------------------------------------------------------------------- CEL


def test_a_rule_that_holds_lets_the_request_through() -> None:
    rule = PolicyRule(name="canary-only", expression='request.strategy.type == "canary"')
    assert rules.broken_rule([rule], context(canary(20, 100))) is None


def test_a_rule_that_does_not_hold_is_named_with_its_message() -> None:
    rule = PolicyRule(
        name="small-steps",
        expression="request.steps.all(s, !has(s.set_weight) || s.set_weight <= 25 "
        "|| s.set_weight == 100)",
        message="canary steps of at most 25%",
    )
    broken = rules.broken_rule([rule], context(canary(50, 100)))
    assert broken == rules.Violation("rules.small-steps", "canary steps of at most 25%")


def test_rules_read_the_caller_the_time_and_the_kind() -> None:
    weekday = PolicyRule(name="weekdays", expression="now.getDayOfWeek() in [1, 2, 3, 4]")
    admins = PolicyRule(name="admins", expression='request.role == "admin"')
    kind = PolicyRule(name="kind", expression='request.kind == "deployment"')
    assert rules.broken_rule([kind], context(canary(100))) is None
    assert rules.broken_rule([weekday], context(canary(100))) is not None  # a Friday (5)
    assert rules.broken_rule([admins], context(canary(100), role="admin")) is None
    config = rules.config_context(
        "prod", "apikey:bob", "operator", FRIDAY_NOON, key="db.url", component=None
    )
    assert rules.broken_rule([kind], config) == rules.Violation(
        "rules.kind", 'request.kind == "deployment" is false'
    )


def test_a_rule_may_exempt_rollbacks() -> None:
    rule = PolicyRule(
        name="no-rolling",
        expression='request.rollback_of != null || request.strategy.type != "rolling"',
    )
    assert rules.rule_problem(rule) is None
    rolling = DeploymentRequest(component="demo", environment="prod", version="2.0")
    assert rules.broken_rule([rule], context(rolling)) is not None
    back = rules.deployment_context(rolling, "apikey:alice", "operator", FRIDAY_NOON, "dep-1")
    assert rules.broken_rule([rule], back) is None


def test_a_rule_that_fails_to_evaluate_refuses_rather_than_allows() -> None:
    # Valid at PUT time (it reads a field only canaries have), broken for a rolling update.
    rule = PolicyRule(name="first-step", expression="request.strategy.steps[0].set_weight < 50")
    rolling = DeploymentRequest(component="demo", environment="prod", version="2.0")
    broken = rules.broken_rule([rule], context(rolling))
    assert broken is not None and broken.rule == "rules.first-step"
    assert "could not be evaluated" in broken.message


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("request.kind ==", "Syntax error"),
        ("undefined_variable == 1", "Undefined variable"),
        ("request.no_such_field", "no_such_field"),
        ("1 + 1", "not a boolean"),
        (
            "request.steps.all(a, request.steps.all(b, request.steps.all(c, true)))",
            "at most 2 per rule",
        ),
    ],
)
def test_an_unusable_rule_is_refused_when_written(expression: str, problem: str) -> None:
    found = rules.rule_problem(PolicyRule(name="bad", expression=expression))
    assert found is not None and problem in found


def test_a_rule_is_compiled_once_and_evaluates_fast() -> None:
    expression = 'request.steps.exists(s, has(s.approval)) || request.kind == "config"'
    assert rules.compile_rule(expression) is rules.compile_rule(expression)
    rule = PolicyRule(name="fast", expression=expression)
    req = canary(*([1] * 99), 100)  # the most steps a canary can have
    ctx = context(req)
    started = time.perf_counter()
    for _ in range(200):
        rules.broken_rule([rule], ctx)
    per_rule = (time.perf_counter() - started) / 200
    assert per_rule < 0.01, f"{per_rule * 1000:.2f} ms per evaluation"


def test_rule_names_are_unique_and_bounded() -> None:
    with pytest.raises(ValidationError, match="repeated: a"):
        PolicySpec(rules=[PolicyRule(name="a", expression="true")] * 2)
    with pytest.raises(ValidationError):
        PolicyRule(name="a", expression="x" * 1001)
    with pytest.raises(ValidationError):
        PolicySpec(rules=[PolicyRule(name=f"r{i}", expression="true") for i in range(21)])


# ----------------------------------------------------------------------------- freeze windows


def test_an_absolute_window_includes_its_start_and_excludes_its_end() -> None:
    window = FreezeWindow(start=FRIDAY_NOON, end=FRIDAY_NOON + timedelta(hours=2))
    spec = PolicySpec(freeze_windows=[window])
    assert rules.active_freeze(spec, FRIDAY_NOON - timedelta(microseconds=1)) is None
    assert rules.active_freeze(spec, FRIDAY_NOON) is not None
    assert rules.active_freeze(spec, FRIDAY_NOON + timedelta(hours=2)) is None
    frozen = rules.active_freeze(spec, FRIDAY_NOON + timedelta(hours=1))
    assert frozen is not None and frozen.rule == "freeze_windows[0]"


def test_an_absolute_window_in_another_zone_is_compared_in_utc() -> None:
    paris = datetime.fromisoformat("2026-11-27T13:00:00+01:00")  # 12:00 UTC
    spec = PolicySpec(freeze_windows=[FreezeWindow(start=paris, end=paris + timedelta(hours=1))])
    assert rules.active_freeze(spec, FRIDAY_NOON) is not None


def test_a_window_must_end_after_it_starts_and_carry_a_zone() -> None:
    with pytest.raises(ValidationError, match="end must be after"):
        FreezeWindow(start=FRIDAY_NOON, end=FRIDAY_NOON)
    with pytest.raises(ValidationError):
        FreezeWindow.model_validate({"start": "2026-11-27T12:00:00", "end": "2026-11-28T12:00:00"})


def test_a_weekly_window_over_midnight_freezes_the_next_morning() -> None:
    weekend = WeeklyFreezeWindow.model_validate(
        {"days": ["fri"], "start": "18:00", "end": "06:00", "reason": "weekend"}
    )
    spec = PolicySpec(weekly_freeze_windows=[weekend])
    friday_evening = FRIDAY_NOON.replace(hour=18)
    assert rules.active_freeze(spec, friday_evening - timedelta(seconds=1)) is None
    frozen = rules.active_freeze(spec, friday_evening)
    assert frozen is not None and frozen.rule == "weekly_freeze_windows[0]"
    assert "weekend" in frozen.message
    saturday_early = friday_evening + timedelta(hours=11, minutes=59)
    assert rules.active_freeze(spec, saturday_early) is not None
    assert rules.active_freeze(spec, friday_evening + timedelta(hours=12)) is None  # Sat 06:00
    # Thursday evening is not frozen: the window is on Fridays only.
    assert rules.active_freeze(spec, friday_evening - timedelta(days=1)) is None


def test_a_weekly_window_within_a_day_covers_each_listed_day() -> None:
    lunch = WeeklyFreezeWindow.model_validate(
        {"days": ["mon", "fri"], "start": "11:30", "end": "13:00"}
    )
    spec = PolicySpec(weekly_freeze_windows=[lunch])
    assert rules.active_freeze(spec, FRIDAY_NOON) is not None
    assert rules.active_freeze(spec, FRIDAY_NOON + timedelta(days=3)) is not None  # Monday
    assert rules.active_freeze(spec, FRIDAY_NOON + timedelta(days=1)) is None  # Saturday
    assert rules.active_freeze(spec, FRIDAY_NOON.replace(hour=13)) is None


def test_weekly_times_are_utc() -> None:
    with pytest.raises(ValidationError, match="UTC"):
        WeeklyFreezeWindow.model_validate({"days": ["fri"], "start": "18:00+02:00", "end": "20:00"})


# ----------------------------------------------------------------------------- strategies


def test_a_strategy_the_policy_does_not_allow_is_named() -> None:
    spec = PolicySpec(allowed_strategies=["canary", "blue_green"])
    rolling = DeploymentRequest(component="demo", environment="prod", version="2.0")
    violation = rules.strategy_violation(spec, rolling)
    assert violation is not None and violation.rule == "allowed_strategies"
    assert rules.strategy_violation(spec, canary(100)) is None


def test_required_analysis_counts_steps_background_and_blue_green_analyses() -> None:
    spec = PolicySpec(require_analysis=True)
    assert rules.strategy_violation(spec, canary(20, 100)) is not None
    analysis = {"metrics": [{"name": "error_rate", "failure_condition": "result > 0.05"}]}
    background = canary(20, 100, analysis=analysis)
    assert rules.strategy_violation(spec, background) is None
    blue_green = DeploymentRequest(
        component="demo",
        environment="prod",
        version="2.0",
        strategy=BlueGreenStrategy.model_validate({"pre_promotion_analysis": analysis}),
    )
    assert rules.strategy_violation(spec, blue_green) is None


def test_the_maximum_canary_step_weight_spares_the_final_100() -> None:
    spec = PolicySpec(max_canary_step_weight=25)
    assert rules.strategy_violation(spec, canary(10, 25, 100)) is None
    violation = rules.strategy_violation(spec, canary(10, 50, 100))
    assert violation is not None and violation.rule == "max_canary_step_weight"
    assert "step 2 sets weight 50%" in violation.message


# ----------------------------------------------------------------------------- gates


TWO_OPERATORS = PolicySpec(required_approval=RequiredApproval(roles=["operator"], approvers=2))


def test_a_required_approval_goes_before_the_canary_step_that_reaches_100() -> None:
    planned = rules.with_required_gates(TWO_OPERATORS, "prod v1", canary(20, 50, 100))
    assert isinstance(planned.strategy, CanaryStrategy)
    kinds = [type(s).__name__ for s in planned.strategy.steps]
    assert kinds == ["SetWeightStep", "SetWeightStep", "ApprovalStep", "SetWeightStep"]
    gate = planned.strategy.steps[2]
    assert isinstance(gate, ApprovalStep)
    assert gate.approval.approvers == 2 and "prod v1" in gate.approval.instructions


def test_a_required_approval_ends_a_canary_without_a_100_step() -> None:
    planned = rules.with_required_gates(TWO_OPERATORS, "prod v1", canary(20, 50))
    assert isinstance(planned.strategy, CanaryStrategy)
    assert isinstance(planned.strategy.steps[-1], ApprovalStep)


def test_a_planned_request_gets_no_second_gate() -> None:
    once = rules.with_required_gates(TWO_OPERATORS, "prod v1", canary(20, 100))
    assert rules.with_required_gates(TWO_OPERATORS, "prod v2", once) == once


def test_an_approval_in_the_request_that_meets_the_policy_becomes_the_policys_gate() -> None:
    req = canary_with_approval({"roles": ["admin"], "approvers": 3})
    planned = rules.with_required_gates(TWO_OPERATORS, "prod v1", req)
    assert isinstance(planned.strategy, CanaryStrategy)
    gates = [s for s in planned.strategy.steps if isinstance(s, ApprovalStep)]
    assert len(gates) == 1 and gates[0].approval.approvers == 3
    assert gates[0].approval.required_by == "prod v1"  # so a first deployment waits for it


def test_a_weaker_approval_in_the_request_does_not_satisfy_the_policy() -> None:
    req = canary_with_approval({"roles": ["viewer"], "approvers": 2})
    planned = rules.with_required_gates(TWO_OPERATORS, "prod v1", req)
    assert isinstance(planned.strategy, CanaryStrategy)
    assert sum(isinstance(s, ApprovalStep) for s in planned.strategy.steps) == 2


def test_blue_green_and_rolling_get_their_gate_as_a_field() -> None:
    for strategy in (BlueGreenStrategy(), RollingStrategy()):
        req = DeploymentRequest(
            component="demo", environment="prod", version="2.0", strategy=strategy
        )
        planned = rules.with_required_gates(TWO_OPERATORS, "prod v1", req)
        approval = planned.strategy.approval  # type: ignore[union-attr]
        assert approval is not None and approval.approvers == 2


def test_a_canary_with_no_room_for_the_gate_is_refused() -> None:
    with pytest.raises(rules.PolicyGateError, match="no room"):
        rules.with_required_gates(TWO_OPERATORS, "prod v1", canary(*([1] * 99), 100))
