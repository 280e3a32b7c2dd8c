"""The plan of a deployment in Markdown: the Temporal UI's static details, and the CLI's."""

from __future__ import annotations

from core.models.analysis import AnalysisSpec
from core.models.deployments import (
    AnalysisStep,
    ApprovalSpec,
    ApprovalStep,
    BlueGreenStrategy,
    CanaryStrategy,
    DeploymentRequest,
    PauseStep,
    SetWeightStep,
)


def summary(req: DeploymentRequest) -> str:
    """One line, as the Temporal UI lists it: "canary demo v2 → staging"."""
    return (
        f"{req.strategy.type.replace('_', '-')} {req.component} {req.version} → {req.environment}"
    )


def _metrics(spec: AnalysisSpec) -> str:
    parts = []
    for m in spec.metrics:
        cond = m.failure_condition and f"fail if `{m.failure_condition}`" or ""
        cond = cond or (m.success_condition and f"pass if `{m.success_condition}`") or ""
        parts.append(f"{m.name} {cond} x{m.measurements}".strip())
    return "; ".join(parts)


def _approval(a: ApprovalSpec) -> str:
    """How a plan shows an approval gate: approval by 2 different operator (required by
    policy prod v3)."""
    who = ", ".join(r.value for r in a.roles)
    count = f"{a.approvers} different " if a.approvers > 1 else ""
    why = f" ({a.instructions[:100]})" if a.instructions else ""
    return f"approval by {count}{who}{why}"


def plan_markdown(req: DeploymentRequest) -> str:
    s = req.strategy
    lines = [f"### {summary(req)}", ""]
    if isinstance(s, CanaryStrategy):
        for i, step in enumerate(s.steps, 1):
            if isinstance(step, SetWeightStep):
                text = f"set weight {step.set_weight}%"
            elif isinstance(step, PauseStep):
                d = step.pause.duration
                text = f"pause {d:g}s" if d is not None else "pause until promoted"
            elif isinstance(step, AnalysisStep):
                text = f"analysis: {_metrics(step.analysis)}"
            elif isinstance(step, ApprovalStep):
                text = _approval(step.approval)
            lines.append(f"{i}. {text}")
        if s.analysis:
            lines.append(f"- background analysis: {_metrics(s.analysis)}")
    elif isinstance(s, BlueGreenStrategy):
        lines.append("1. start the preview set")
        if s.pre_promotion_analysis:
            lines.append(f"2. pre-promotion analysis: {_metrics(s.pre_promotion_analysis)}")
        promotion = (
            f"automatic after {s.auto_promotion_seconds:g}s"
            if s.auto_promotion_enabled
            else "by hand"
        )
        lines.append(f"- promotion {promotion}")
        if s.approval:
            lines.append(f"- {_approval(s.approval)}")
        lines.append("- switch 100% of the traffic")
        if s.post_promotion_analysis:
            lines.append(f"- post-promotion analysis: {_metrics(s.post_promotion_analysis)}")
        lines.append(f"- remove the old set after {s.scale_down_delay_seconds:g}s")
    else:
        if s.approval:
            lines.append(f"- before the first batch: {_approval(s.approval)}")
        lines.append(
            f"- rolling: batch {s.batch_size or max(s.max_surge, s.max_unavailable)}, "
            f"max surge {s.max_surge}, max unavailable {s.max_unavailable}"
        )
    lines.append(f"- progress deadline {s.progress_deadline_seconds:g}s")
    return "\n".join(lines)
