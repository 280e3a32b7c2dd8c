"""Request and response bodies of the orchestration API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
        description="workflow id; the same id never starts a second workflow",
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
