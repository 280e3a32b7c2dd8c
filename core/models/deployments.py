"""Deployments: strategies in the vocabulary of Argo Rollouts, the workflow's input and status."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.models.analysis import (
    MAX_INLINE_MEASUREMENTS,
    AnalysisResult,
    AnalysisSpec,
    Measurement,
    UnboundedAnalysisSpec,
    check_inline_budget,
)
from core.models.apikeys import Role
from core.models.durations import Duration
from core.models.names import ComponentName, EnvironmentName, EnvVars, VersionLabel

# Non-finite numbers are refused everywhere: JSON's `Infinity`/`NaN` would reach the workflow
# as input it cannot decode, or overflow a timer.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
MAX_STEPS = 100
# The longest a deployment may go without progress before it fails, at most.
MAX_PROGRESS_DEADLINE_SECONDS = 7 * 86400.0


# ----------------------------------------------------------------------------- canary steps


class SetWeightStep(BaseModel):
    model_config = _STRICT
    set_weight: int = Field(..., ge=0, le=100, description="percent of traffic to the new version")


class PauseSpec(BaseModel):
    model_config = _STRICT
    duration: Duration | None = Field(None, description="absent: wait for promote")


class PauseStep(BaseModel):
    model_config = _STRICT
    pause: PauseSpec


class AnalysisStep(BaseModel):
    model_config = _STRICT
    analysis: AnalysisSpec


class ApprovalSpec(BaseModel):
    """A manual gate: `approvers` different people with one of `roles` must approve within
    `timeout`."""

    model_config = _STRICT
    roles: list[Role] = Field(default_factory=lambda: [Role.OPERATOR], max_length=3)
    approvers: int = Field(1, ge=1, le=5, description="how many different people must approve")
    timeout: Duration = Field(4 * 3600, gt=0)
    on_timeout: Literal["abort", "continue"] = "abort"
    instructions: str = Field("", max_length=2000)
    required_by: str | None = Field(
        None,
        max_length=100,
        description="the policy that put this gate in the plan (set by the API); such a gate "
        "holds a first deployment too, which otherwise skips its steps",
    )


class ApprovalStep(BaseModel):
    model_config = _STRICT
    approval: ApprovalSpec


CanaryStep = SetWeightStep | PauseStep | AnalysisStep | ApprovalStep


class BackgroundAnalysis(UnboundedAnalysisSpec):
    """Runs beside the steps, from `starting_step` until the rollout ends.

    It runs in a child workflow that continues as new, so it may measure for as long as the
    rollout lasts: a metric with an `interval` and no `count` measures until the end.
    """

    starting_step: int = Field(0, ge=0, le=MAX_STEPS)

    @model_validator(mode="after")
    def _paced(self) -> BackgroundAnalysis:
        for m in self.metrics:
            if m.count is None and m.interval is not None and m.interval < 1:
                raise ValueError(
                    f"background metric {m.name!r} measures until the rollout ends: its "
                    "interval must be at least 1s"
                )
        return self


# ----------------------------------------------------------------------------- strategies


class CanaryStrategy(BaseModel):
    model_config = _STRICT
    type: Literal["canary"] = "canary"
    steps: list[CanaryStep] = Field(..., min_length=1, max_length=MAX_STEPS)
    analysis: BackgroundAnalysis | None = None
    progress_deadline_seconds: float = Field(600, gt=0, le=MAX_PROGRESS_DEADLINE_SECONDS)

    @model_validator(mode="after")
    def _history_fits(self) -> CanaryStrategy:
        check_inline_budget([s.analysis for s in self.steps if isinstance(s, AnalysisStep)])
        return self


class BlueGreenStrategy(BaseModel):
    model_config = _STRICT
    type: Literal["blue_green"] = "blue_green"
    preview_replica_count: int | None = Field(None, ge=1, le=100)
    auto_promotion_enabled: bool = True
    auto_promotion_seconds: Duration = 0
    scale_down_delay_seconds: Duration = 30
    abort_scale_down_delay_seconds: Duration = 30
    pre_promotion_analysis: AnalysisSpec | None = None
    post_promotion_analysis: AnalysisSpec | None = None
    approval: ApprovalSpec | None = Field(None, description="an approval gate before the switch")
    progress_deadline_seconds: float = Field(600, gt=0, le=MAX_PROGRESS_DEADLINE_SECONDS)

    @model_validator(mode="after")
    def _history_fits(self) -> BlueGreenStrategy:
        check_inline_budget(
            [a for a in (self.pre_promotion_analysis, self.post_promotion_analysis) if a]
        )
        return self


class RollingStrategy(BaseModel):
    model_config = _STRICT
    type: Literal["rolling"] = "rolling"
    max_surge: int = Field(1, ge=0, le=100)
    max_unavailable: int = Field(0, ge=0, le=100)
    batch_size: int | None = Field(None, ge=1, le=100, description="replaces surge/unavailable")
    pause_between_batches: Duration = 0
    approval: ApprovalSpec | None = Field(
        None, description="an approval gate before the first batch"
    )
    analysis: AnalysisSpec | None = Field(
        None,
        description="measured after each batch, before the next (after the last one before the"
        " old set goes); a judge metric's baseline is the window before the deployment",
    )
    progress_deadline_seconds: float = Field(600, gt=0, le=MAX_PROGRESS_DEADLINE_SECONDS)

    @model_validator(mode="after")
    def _progress_possible(self) -> RollingStrategy:
        if self.batch_size is None and self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError("max_surge and max_unavailable cannot both be 0")
        return self

    @property
    def batch(self) -> int:
        """Instances replaced per batch."""
        return self.batch_size or max(self.max_surge, self.max_unavailable)

    def batches(self, replicas: int) -> int:
        return -(-replicas // self.batch)

    def analysed_batches(self, replicas: int) -> list[int]:
        """The batches (1-based) after which the analysis runs: every one, unless their
        analyses together could overflow the deployment's history (MAX_INLINE_MEASUREMENTS),
        then evenly spaced ones, the last batch always among them (it decides whether the
        old set goes)."""
        if self.analysis is None:
            return []
        total = self.batches(replicas)
        allowed = max(1, MAX_INLINE_MEASUREMENTS // self.analysis.budget)
        if total <= allowed:
            return list(range(1, total + 1))
        stride = -(-total // allowed)
        return sorted({*range(total, 0, -stride)})[-allowed:]


Strategy = Annotated[
    CanaryStrategy | BlueGreenStrategy | RollingStrategy, Field(discriminator="type")
]


# ----------------------------------------------------------------------------- requests

ConfigChoice = Literal["latest"] | Annotated[int, Field(ge=0, le=2**31 - 1)]
"""A deployment's configuration: the newest revision, or a revision number."""

UiActions = Literal["all", "safe", "none"]
"""`all`: every signal; `safe`: pause and abort only (they can only stop a rollout); `none`."""


class DeploymentRequest(BaseModel):
    """What a client asks for. `env` overrides the new version's environment: references and
    settings only; secrets belong in the secrets store, never in a deployment."""

    model_config = _STRICT

    component: ComponentName
    environment: EnvironmentName
    version: VersionLabel
    strategy: Strategy = Field(default_factory=RollingStrategy)
    replicas: int | None = Field(None, ge=1, le=100, description="default: the component's")
    env: EnvVars = Field(
        default_factory=dict,
        description="environment overrides of the new version; loader, interpreter and shell"
        " hooks (LD_*, PYTHON*, NODE_OPTIONS, BASH_ENV, PATH, ...) are refused",
    )
    description: str = Field("", max_length=500)
    freeze_override: bool = Field(
        False,
        description="admins only: deploy inside a freeze window of the environment's policy "
        "(the override is audited)",
    )
    config: ConfigChoice = Field(
        "latest",
        description="the configuration revision to run with: `latest` (the newest revision"
        " that affects the target when the deployment starts) or a revision number; a"
        " deployment of the running version with another revision is a real rollout",
    )


class DeploymentInput(DeploymentRequest):
    """The workflow's input: the request plus who asked and the deployment's id."""

    deployment_id: str
    initiator: str
    replicas_resolved: int = Field(..., ge=1, le=100)
    rollback_of: str | None = None
    config_revision: int | None = Field(
        None,
        ge=0,
        description="the configuration revision the new version runs with (resolved by the"
        " API); None in deployments started before configuration existed",
    )
    ui_actions: UiActions = Field(
        "all",
        description="which signals sent from the Temporal UI are honoured (R2C_UI_ACTIONS)",
    )


class PauseReason(StrEnum):
    """Why a deployment waits for a human (Argo Rollouts' pause reasons)."""

    STEP = "CanaryPauseStep"
    INCONCLUSIVE_ANALYSIS = "InconclusiveAnalysis"
    PROMOTION = "BlueGreenPause"
    APPROVAL = "Approval"
    BY_HAND = "PausedByHand"


class DeploymentState(StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    FAILED = "failed"


FINAL_STATES = frozenset(
    {
        DeploymentState.SUCCEEDED,
        DeploymentState.ROLLED_BACK,
        DeploymentState.ABORTED,
        DeploymentState.FAILED,
    }
)


class Approval(BaseModel):
    step: int
    by: str
    at: datetime
    comment: str = ""


class ActionRequest(BaseModel):
    """The body of a human action (promote, pause, resume, abort, approve)."""

    model_config = _STRICT
    by: str = Field("", description="set by the API from the caller's key")
    role: Role | None = None
    full: bool = Field(False, description="promote: skip every remaining step")
    reason: str = Field("", max_length=500)


class DeploymentStatus(BaseModel):
    """What the `status` query answers, and what the deployment records when it ends."""

    deployment_id: str
    component: str
    environment: str
    version: str
    previous_version: str | None = None
    strategy: str
    config_revision: int | None = Field(None, description="the configuration revision it runs")
    state: DeploymentState = DeploymentState.PENDING
    phase: str = "starting"
    step: int = 0
    steps: int = 0
    weights: dict[str, int] = Field(default_factory=dict)
    new_slot: str | None = None
    stable_slot: str | None = None
    endpoint: str | None = None
    paused_reason: str | None = Field(None, description="why it waits, in words")
    pause_reason: PauseReason | None = Field(None, description="why it waits, as a type")
    measurements: list[Measurement] = Field(default_factory=list)
    analyses: list[AnalysisResult] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    notices: list[str] = Field(
        default_factory=list, description="the newest signals that were ignored, and why"
    )
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
