"""The rules of an environment policy, without I/O: CEL rules compiled once and evaluated within
bounds, freeze windows, and what a policy forbids in a deployment request.

CEL comes from the `common-expression-language` package (Rust's `cel` crate behind a small
Python API): it compiles once into a reusable `Program`, reports syntax errors with line and
column, and evaluates in native code. See docs/policies.md for the variables a rule can read
and the costs measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import cel

from core.judge.spec import VerdictPolicy
from core.models.analysis import AnalysisSpec
from core.models.deployments import (
    MAX_STEPS,
    AnalysisStep,
    ApprovalSpec,
    ApprovalStep,
    BlueGreenStrategy,
    CanaryStrategy,
    DeploymentRequest,
    SetWeightStep,
)
from core.models.policies import FreezeWindow, PolicyRule, PolicySpec, WeeklyFreezeWindow

# CEL has no loops, but its macros nest: three comprehensions over 100 steps are a million
# iterations. At most this many macros per rule keeps every rule's cost bounded by
# (steps)^MAX_MACROS even in the worst case.
MAX_MACROS = 2
_MACRO = re.compile(r"\.\s*(all|exists|exists_one|map|filter)\s*\(")


@dataclass(frozen=True)
class Violation:
    """What a policy forbids: the rule (a field of the policy, or `rules.<name>`) and why."""

    rule: str
    message: str


# ----------------------------------------------------------------------------- CEL


class RuleError(ValueError):
    """A CEL rule that cannot be used: it does not compile, reads an unknown variable, or does
    not answer a boolean."""


@lru_cache(maxsize=512)
def compile_rule(expression: str) -> cel.Program:
    """The compiled program of `expression` (cached: policies are read on every request)."""
    macros = len(_MACRO.findall(expression))
    if macros > MAX_MACROS:
        raise RuleError(
            f"{macros} comprehension macros (all, exists, exists_one, map, filter); at most "
            f"{MAX_MACROS} per rule keep its evaluation bounded"
        )
    try:
        return cel.compile(expression)
    except ValueError as err:
        raise RuleError(str(err)) from None


def evaluate(program: cel.Program, context: cel.Context | dict[str, Any]) -> bool:
    """The rule's answer; any evaluation error (a missing field, a type mismatch, a division
    by zero) is a RuleError, and the caller refuses the request: a rule that cannot be
    evaluated does not let anything through."""
    try:
        answer = program.execute(context)
    except (KeyError, RuntimeError, ValueError, TypeError, ArithmeticError) as err:
        raise RuleError(f"{type(err).__name__}: {err}") from None
    if not isinstance(answer, bool):
        raise RuleError(f"the rule answered {type(answer).__name__} {answer!r}, not a boolean")
    return answer


def sample_contexts() -> list[dict[str, Any]]:
    """One context of each request kind, to try a rule on when it is written: a rule that
    reads an unknown variable or answers something other than a boolean is refused then,
    not when a deployment meets it."""
    deployment = DeploymentRequest(
        component="sample",
        environment="sample",
        version="1.0.0",
        strategy=CanaryStrategy(steps=[SetWeightStep(set_weight=20)]),
    )
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    return [
        deployment_context(deployment, "apikey:sample", "operator", now),
        config_context("sample", "apikey:sample", "operator", now, key="sample", component=None),
    ]


def rule_problem(rule: PolicyRule) -> str | None:
    """Why `rule` cannot be used, or None: it must compile, stay within the macro budget, and
    answer a boolean for a deployment and for a configuration change."""
    try:
        program = compile_rule(rule.expression)
        for context in sample_contexts():
            evaluate(program, cel.Context(variables=context))
    except RuleError as err:
        return str(err)
    return None


def broken_rule(rules: list[PolicyRule], context: dict[str, Any]) -> Violation | None:
    """The first rule that does not hold for `context`, in the policy's order."""
    if not rules:
        return None
    # Converting the context to CEL values is most of the cost (~0.5 ms for a 100-step
    # canary): once per request, then each rule evaluates in about a microsecond.
    values = cel.Context(variables=context)
    for rule in rules:
        try:
            holds = evaluate(compile_rule(rule.expression), values)
        except RuleError as err:
            return Violation(f"rules.{rule.name}", f"the rule could not be evaluated: {err}")
        if not holds:
            return Violation(f"rules.{rule.name}", rule.message or f"{rule.expression} is false")
    return None


def _base_context(
    kind: str, environment: str, initiator: str, role: str, now: datetime
) -> dict[str, Any]:
    return {
        "kind": kind,
        "environment": environment,
        "initiator": initiator,
        "role": role,
        "component": None,
        "version": None,
        "key": None,
        "strategy": {"type": ""},
        "steps": [],
        "replicas": None,
        "rollback_of": None,
        "now": now,
    }


def deployment_context(
    req: DeploymentRequest,
    initiator: str,
    role: str,
    now: datetime,
    rollback_of: str | None = None,
) -> dict[str, Any]:
    """The CEL variables of a deployment request: `request` and `now`."""
    request = _base_context("deployment", req.environment, initiator, role, now)
    strategy = req.strategy.model_dump(mode="json", exclude_none=True)
    request.update(
        component=req.component,
        version=req.version,
        strategy=strategy,
        steps=strategy.get("steps", []),
        replicas=req.replicas,
        rollback_of=rollback_of,
    )
    del request["now"]
    return {"request": request, "now": now}


def config_context(
    environment: str,
    initiator: str,
    role: str,
    now: datetime,
    *,
    key: str | None,
    component: str | None,
) -> dict[str, Any]:
    """The CEL variables of a configuration change: `request` and `now`."""
    request = _base_context("config", environment, initiator, role, now)
    request.update(key=key, component=component)
    del request["now"]
    return {"request": request, "now": now}


# ----------------------------------------------------------------------------- freeze windows


def in_weekly_window(window: WeeklyFreezeWindow, now: datetime) -> bool:
    """Whether `now` (aware, any zone) is inside the weekly window, start included, end
    excluded; a window whose end is not after its start runs into the next day."""
    now = now.astimezone(UTC)
    days = {d.number for d in window.days}
    start = window.start.replace(tzinfo=UTC)
    end = window.end.replace(tzinfo=UTC)
    # The window that began today, or the one that began yesterday and runs past midnight.
    for began in (now, now - timedelta(days=1)):
        if began.weekday() not in days:
            continue
        opened = datetime.combine(began.date(), start)
        closed = datetime.combine(began.date(), end)
        if closed <= opened:
            closed += timedelta(days=1)
        if opened <= now < closed:
            return True
    return False


def in_window(window: FreezeWindow, now: datetime) -> bool:
    return window.start <= now < window.end


def active_freeze(spec: PolicySpec, now: datetime) -> Violation | None:
    """The freeze window `now` falls in, if any."""
    for i, window in enumerate(spec.freeze_windows):
        if in_window(window, now):
            why = f" ({window.reason})" if window.reason else ""
            return Violation(
                f"freeze_windows[{i}]",
                f"frozen from {window.start.isoformat()} to {window.end.isoformat()}{why}",
            )
    for i, weekly in enumerate(spec.weekly_freeze_windows):
        if in_weekly_window(weekly, now):
            why = f" ({weekly.reason})" if weekly.reason else ""
            days = ",".join(d.value for d in weekly.days)
            return Violation(
                f"weekly_freeze_windows[{i}]",
                f"frozen every {days} {weekly.start:%H:%M}-{weekly.end:%H:%M} UTC{why}",
            )
    return None


# ----------------------------------------------------------------------------- deployments


def has_analysis(req: DeploymentRequest) -> bool:
    """Whether the deployment measures the new version before it commits to it."""
    s = req.strategy
    if isinstance(s, CanaryStrategy):
        return s.analysis is not None or any(isinstance(x, AnalysisStep) for x in s.steps)
    if s.type == "blue_green":
        return s.pre_promotion_analysis is not None or s.post_promotion_analysis is not None
    return s.analysis is not None


def strategy_violation(spec: PolicySpec, req: DeploymentRequest) -> Violation | None:
    """What the policy's fixed fields forbid in the deployment's strategy."""
    kind = req.strategy.type
    if spec.allowed_strategies is not None and kind not in spec.allowed_strategies:
        allowed = ", ".join(spec.allowed_strategies)
        return Violation("allowed_strategies", f"strategy {kind} is not allowed; use {allowed}")
    if spec.require_analysis and not has_analysis(req):
        return Violation(
            "require_analysis",
            "the deployment must include an analysis step or a background analysis"
            + (
                " (a rolling update's is `analysis`, after each batch)" if kind == "rolling" else ""
            ),
        )
    limit = spec.max_canary_step_weight
    if limit is not None and isinstance(req.strategy, CanaryStrategy):
        for i, step in enumerate(req.strategy.steps, 1):
            if isinstance(step, SetWeightStep) and limit < step.set_weight < 100:
                return Violation(
                    "max_canary_step_weight",
                    f"step {i} sets weight {step.set_weight}%; at most {limit}% before 100%",
                )
    return None


def approval_satisfied(step: ApprovalStep, spec: PolicySpec) -> bool:
    """Whether an approval step already in a request meets the policy's required approval
    (so a retried deployment, or one that asks for it itself, gets no second gate)."""
    need = spec.required_approval
    if need is None:
        return True
    a = step.approval
    strong_enough = all(any(r.allows(n) for n in need.roles) for r in a.roles)
    return strong_enough and a.approvers >= need.approvers and a.on_timeout == "abort"


def required_approval_step(spec: PolicySpec, label: str) -> ApprovalStep:
    need = spec.required_approval
    assert need is not None
    return ApprovalStep(
        approval=ApprovalSpec(
            roles=list(need.roles),
            approvers=need.approvers,
            timeout=need.timeout,
            on_timeout="abort",
            instructions=f"required by policy {label}",
            required_by=label,
        )
    )


def _judged(analysis: AnalysisSpec, policy: VerdictPolicy) -> AnalysisSpec:
    """The analysis with every judge metric's verdicts doing what `policy` says."""
    metrics = [
        m.model_copy(update={"judge": m.judge.model_copy(update={"on_verdict": policy})})
        if m.judge is not None
        else m
        for m in analysis.metrics
    ]
    return analysis.model_copy(update={"metrics": metrics})


def with_judge_verdicts(spec: PolicySpec, req: DeploymentRequest) -> DeploymentRequest:
    """The request with the policy's `judge_verdicts` as the `on_verdict` of every judge
    metric of every analysis, whatever the request said: the plan (and the status) then
    shows what a verdict will do in this environment."""
    policy = spec.judge_verdicts
    if policy is None:
        return req
    s = req.strategy
    strategy: Any
    if isinstance(s, CanaryStrategy):
        steps = [
            AnalysisStep(analysis=_judged(x.analysis, policy)) if isinstance(x, AnalysisStep) else x
            for x in s.steps
        ]
        background = s.analysis
        strategy = s.model_copy(
            update={
                "steps": steps,
                "analysis": _judged(background, policy) if background is not None else None,
            }
        )
    elif isinstance(s, BlueGreenStrategy):
        pre, post = s.pre_promotion_analysis, s.post_promotion_analysis
        strategy = s.model_copy(
            update={
                "pre_promotion_analysis": _judged(pre, policy) if pre is not None else None,
                "post_promotion_analysis": _judged(post, policy) if post is not None else None,
            }
        )
    else:
        own = s.analysis
        strategy = s.model_copy(
            update={"analysis": _judged(own, policy) if own is not None else None}
        )
    return req.model_copy(update={"strategy": strategy})


def with_required_gates(spec: PolicySpec, label: str, req: DeploymentRequest) -> DeploymentRequest:
    """The request as the policy plans it (`planned_deployment`): its judge metrics' verdicts
    mapped by the policy's `judge_verdicts` (`with_judge_verdicts`), and the gates the policy
    requires, where they belong: a canary's approval before the step that reaches 100% (or
    before the end), a blue-green's before the switch, a rolling update's before the first
    batch. A gate the request already has that meets the policy is kept, marked as the
    policy's (so it holds a first deployment too), and no second one is added."""
    req = with_judge_verdicts(spec, req)
    if spec.required_approval is None:
        return req
    gate = required_approval_step(spec, label)
    s = req.strategy
    strategy: Any
    if isinstance(s, CanaryStrategy):
        full = next(
            (
                i
                for i, x in enumerate(s.steps)
                if isinstance(x, SetWeightStep) and x.set_weight >= 100
            ),
            len(s.steps),
        )
        met = next(
            (
                (i, x)
                for i, x in enumerate(s.steps[:full])
                if isinstance(x, ApprovalStep) and approval_satisfied(x, spec)
            ),
            None,
        )
        steps = list(s.steps)
        if met is not None:
            at, step = met
            steps[at] = ApprovalStep(approval=_marked(step.approval, label))
        elif len(s.steps) >= MAX_STEPS:
            raise PolicyGateError(
                f"the canary has {len(s.steps)} steps, the most a canary may have: there is no "
                f"room for the approval step policy {label} requires"
            )
        else:
            steps.insert(full, gate)
        strategy = s.model_copy(update={"steps": steps})
    else:
        present = s.approval
        if present is not None and approval_satisfied(ApprovalStep(approval=present), spec):
            strategy = s.model_copy(update={"approval": _marked(present, label)})
        else:
            strategy = s.model_copy(update={"approval": gate.approval})
    return req.model_copy(update={"strategy": strategy})


def _marked(approval: ApprovalSpec, label: str) -> ApprovalSpec:
    """The approval, marked as the one the policy requires (unless it already is)."""
    if approval.required_by:
        return approval
    return approval.model_copy(update={"required_by": label})


class PolicyGateError(ValueError):
    """The gate a policy requires cannot be added to the request as it is."""
