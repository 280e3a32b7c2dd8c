"""Request and response bodies of the orchestration API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.models.deployments import DeploymentState, DeploymentStatus, Strategy

WorkflowStatus = Literal[
    "running", "completed", "failed", "cancelled", "terminated", "timed_out", "continued_as_new"
]


class WorkflowStartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(..., description="a registered workflow type, e.g. component-health-check")
    input: dict[str, Any] = Field(default_factory=dict, description="the workflow's input model")
    id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$",
        description="workflow id (for type `deployment`: the deployment's id, at most 64"
        " characters); the same id never starts a second one; ids starting with deploy:,"
        " retire: or r2c: are the system's",
    )


class Links(BaseModel):
    self: str
    cancel: str
    temporal_ui: str


class WorkflowStarted(BaseModel):
    id: str
    run_id: str
    type: str
    created: bool = Field(description="false when an existing workflow was returned")
    status: WorkflowStatus
    links: Links
    deployment_id: str | None = Field(None, description="for type `deployment`: its id")


class WorkflowFailure(BaseModel):
    message: str
    type: str | None = None
    cause: WorkflowFailure | None = None


class WorkflowDetail(BaseModel):
    id: str
    run_id: str
    type: str
    status: WorkflowStatus
    task_queue: str
    initiator: str | None
    start_time: datetime | None
    close_time: datetime | None
    progress: Any = Field(None, description="the workflow's `status` query, while it runs")
    progress_error: str | None = None
    result: Any = None
    failure: WorkflowFailure | None = None
    links: Links


class WorkflowSummary(BaseModel):
    id: str
    run_id: str
    type: str
    status: WorkflowStatus
    initiator: str | None
    start_time: datetime | None
    close_time: datetime | None


class WorkflowPage(BaseModel):
    items: list[WorkflowSummary]
    next_page_token: str | None = Field(None, description="pass as page_token for the next page")


class CancelAccepted(BaseModel):
    id: str
    run_id: str
    action: Literal["cancel_requested", "terminated"]


class WorkflowType(BaseModel):
    type: str
    description: str
    input_schema: dict[str, Any]


class InstanceView(BaseModel):
    id: str
    environment: str
    version: str
    slot: str
    url: str
    pid: int | None
    state: str
    created_at: datetime
    updated_at: datetime


class DeploymentLinks(BaseModel):
    self: str
    temporal_ui: str


class DeploymentView(BaseModel):
    """A deployment as the API shows it."""

    id: str
    component: str
    environment: str
    version: str
    strategy: str
    state: DeploymentState
    initiator: str
    rollback_of: str | None
    config_revision: int | None = Field(None, description="the configuration revision it runs")
    reason: str | None
    created_at: datetime
    finished_at: datetime | None
    status: DeploymentStatus | None = Field(None, description="live while it runs")
    links: DeploymentLinks


class DeploymentPage(BaseModel):
    items: list[DeploymentView]
    total: int
    next_offset: int | None


class DesiredState(BaseModel):
    """The body of PUT /api/v1/deployments/{id}."""

    model_config = ConfigDict(extra="forbid")
    desired: Literal["paused", "resumed", "promoted", "aborted"]
    full: bool = False
    reason: str = Field("", max_length=500)


class RollbackRequest(BaseModel):
    """The body of POST /api/v1/deployments/{id}/rollback."""

    model_config = ConfigDict(extra="forbid")
    revision: int | None = Field(None, ge=1, description="default: the one before")
    strategy: Strategy | None = Field(None, description="default: an immediate switch")


class SignalRecord(BaseModel):
    """A signal a deployment received, as Temporal's history records it: with the identity
    of the client that sent it (the Temporal UI's user, a CLI, a worker)."""

    name: str
    identity: str = Field(description="the sender's Temporal client identity")
    at: datetime


class Revision(BaseModel):
    """What ran after one successful deployment; `env` values are shown to admins only."""

    revision: int
    version: str
    env: dict[str, str]
    replicas: int
    deployment_id: str
    config_revision: int | None = Field(None, description="the configuration revision it ran")
    created_at: datetime


class Readiness(BaseModel):
    """The answer of GET /ready: each dependency is `ok` or `unreachable`."""

    status: Literal["ready", "not ready"]
    dependencies: dict[str, Literal["ok", "unreachable"]]
    message: str | None = Field(None, description="which dependencies do not answer")
