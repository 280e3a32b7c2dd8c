"""A judge inside an analysis: what to compare (JudgeConfig), against which baseline, and what
each verdict makes the rollout do.

The baseline is the previous (stable) version of the target, over one of three windows:

- `concurrent`: the same window as the new version (a canary, where the router splits the
  traffic between both at once);
- `before`: the target's own window of `baseline_window` seconds that ended when the
  deployment started (rolling and blue-green, which have no concurrent control group; the
  router keeps 30 minutes of history);
- `pinned`: the samples of the last judgement that passed for this component and environment.

`auto` picks `concurrent` for a canary and `before` for rolling and blue-green.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.judge.config import JudgeConfig
from core.judge.result import Verdict
from core.models.durations import Duration

BaselineMode = Literal["auto", "concurrent", "before", "pinned"]
ResolvedBaseline = Literal["concurrent", "before", "pinned"]
# What a verdict makes the rollout do: go on, pause until a human promotes it, or roll back.
VerdictAction = Literal["continue", "approval", "rollback"]

# The router keeps 180 buckets per version, of 10 s by default (activities/infrastructure/local/
# router/samples.py): a `before` window cannot reach further back. A router with narrower
# buckets holds less; the judgement then says its baseline is shorter than asked.
MAX_BASELINE_WINDOW_SECONDS = 1800.0
MIN_BASELINE_WINDOW_SECONDS = 10.0
DEFAULT_BASELINE_WINDOW_SECONDS = 300.0


class VerdictPolicy(BaseModel):
    """What each verdict makes the rollout do. `pass` always continues: a gate that stops a
    passing version is an approval step, not a judgement."""

    model_config = ConfigDict(extra="forbid")

    warning: VerdictAction = Field("approval", description="default: pause for approval")
    fail: Literal["rollback", "approval"] = Field("rollback", description="default: roll back")

    def action(self, verdict: Verdict) -> VerdictAction:
        if verdict == "pass":
            return "continue"
        return self.warning if verdict == "warning" else self.fail


class JudgeSpec(JudgeConfig):
    """A judge metric of an analysis: `{"name": "judge", "judge": {"metrics": [...]}}`."""

    baseline: BaselineMode = Field(
        "auto", description="concurrent, before, pinned; auto: concurrent for a canary, else before"
    )
    baseline_window: Duration = Field(
        DEFAULT_BASELINE_WINDOW_SECONDS,
        description="`before` only: how long the window before the deployment is (10s to 30m)",
    )
    on_verdict: VerdictPolicy = Field(
        default_factory=VerdictPolicy,
        description="warning: approval (default), continue or rollback; fail: rollback"
        " (default) or approval. An environment policy's `judge_verdicts` overrides it",
    )

    @model_validator(mode="after")
    def _window_within_history(self) -> JudgeSpec:
        if not MIN_BASELINE_WINDOW_SECONDS <= self.baseline_window <= MAX_BASELINE_WINDOW_SECONDS:
            raise ValueError(
                f"baseline_window is {self.baseline_window:g}s; the router keeps"
                f" {MAX_BASELINE_WINDOW_SECONDS:g}s of history, so use"
                f" {MIN_BASELINE_WINDOW_SECONDS:g}s to {MAX_BASELINE_WINDOW_SECONDS:g}s"
            )
        return self

    def resolved_baseline(self, strategy: str) -> ResolvedBaseline:
        """The baseline in force for a deployment of `strategy` (canary, blue-green, rolling)."""
        if self.baseline != "auto":
            return self.baseline
        return "concurrent" if strategy == "canary" else "before"
