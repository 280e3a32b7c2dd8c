"""Releases: several components deployed in dependency order (waves), undone together.

The request names components and versions only (references, never secrets); each component is
deployed by a child deployment workflow with its own strategy, analysis and gates.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from core.models.deployments import DeploymentState, Strategy, UiActions
from core.models.names import ComponentName, EnvironmentName, VersionLabel

RELEASE_WORKFLOW = "release"
MAX_RELEASE_COMPONENTS = 50
"""A release's history stays far below Temporal's limits at this bound (per component: a few
activities, one child start and its completion, at most one rollback), so the workflow needs
no continue-as-new."""

READ_GRAPH_ACTIVITY = "release-read-graph"
PREPARE_DEPLOYMENT_ACTIVITY = "release-prepare-deployment"
FORGET_DEPLOYMENT_ACTIVITY = "release-forget-deployment"
START_ROLLBACK_ACTIVITY = "release-start-rollback"
AWAIT_DEPLOYMENT_ACTIVITY = "release-await-deployment"
RECORD_RELEASE_ACTIVITY = "release-record"

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


def release_workflow_id(release_id: str) -> str:
    return f"{RELEASE_WORKFLOW}:{release_id}"


class ReleaseRequest(BaseModel):
    """What a client asks for: versions of components in one environment."""

    model_config = _STRICT

    environment: EnvironmentName
    components: dict[ComponentName, VersionLabel] = Field(
        ..., min_length=1, max_length=MAX_RELEASE_COMPONENTS
    )
    strategy: Strategy | None = Field(None, description="default strategy of every component")
    strategies: dict[ComponentName, Strategy] = Field(
        default_factory=dict,
        max_length=MAX_RELEASE_COMPONENTS,
        description="a strategy per component (over `strategy`)",
    )


class ReleaseInput(ReleaseRequest):
    release_id: str = Field(..., min_length=1, max_length=40)
    initiator: str = Field(..., max_length=300)
    ui_actions: UiActions = Field(
        "safe",
        description="R2C_UI_ACTIONS at the start: the `abort` signal (the Temporal UI's) is "
        "honoured unless it is `none`",
    )


class ReleaseState(StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


FINAL_RELEASE_STATES = frozenset(
    {ReleaseState.SUCCEEDED, ReleaseState.ROLLED_BACK, ReleaseState.FAILED}
)


class ComponentProgress(BaseModel):
    """One component of a release: its deployment, and its rollback if the release undid it."""

    component: str
    version: str
    wave: int
    deployment_id: str | None = None
    state: DeploymentState | None = Field(None, description="None: not started")
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    previous_version: str | None = Field(
        None, description="what served before (None: nothing, or this version already)"
    )
    rollback_deployment_id: str | None = None
    rollback_state: DeploymentState | None = None
    rollback_reason: str | None = None
    rollback_started_at: datetime | None = None
    rollback_finished_at: datetime | None = None


class ReleaseStatus(BaseModel):
    """What the release's `status` query answers, and what the store keeps when it ends."""

    release_id: str
    environment: str
    state: ReleaseState = ReleaseState.PENDING
    reason: str | None = None
    failed_component: str | None = Field(None, description="the component that caused it")
    graph: dict[str, list[str]] = Field(
        default_factory=dict, description="the dependencies read at the start"
    )
    waves: list[list[str]] = Field(default_factory=list)
    components: dict[str, ComponentProgress] = Field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    notices: list[str] = Field(default_factory=list, description="signals ignored, and why")


# ----------------------------------------------------------------------------- activities


class GraphRequest(BaseModel):
    components: list[str]


class GraphAnswer(BaseModel):
    graph: dict[str, list[str]]
    unknown: list[str] = Field(default_factory=list)


class PrepareRequest(BaseModel):
    release_id: str
    environment: str
    component: str
    version: str
    strategy: Strategy | None = None
    deployment_id: str


class PrepareAnswer(BaseModel):
    """The child's input (`input`) or why it may not start (`refused`)."""

    input: dict[str, object] | None = None
    refused: str | None = None


class ForgetRequest(BaseModel):
    deployment_id: str
    reason: str = Field("", max_length=500, description="why its child was not started")


class RollbackStartRequest(BaseModel):
    release_id: str
    deployment_id: str


class RollbackStarted(BaseModel):
    deployment_id: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    refused: str | None = None


class AwaitRequest(BaseModel):
    workflow_id: str
    run_id: str


class AwaitAnswer(BaseModel):
    state: DeploymentState
    reason: str | None = None
