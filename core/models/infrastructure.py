"""What an infrastructure provider is asked for and what it reports (local or Kubernetes)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from core.models.names import ComponentName, EnvironmentName, EnvVars, SlotName, VersionLabel


class InstanceSetSpec(BaseModel):
    """Ensure that `slot` of (component, environment) runs `count` instances of `version`.

    `key` names the caller's step (deployment id + step): a repeat with the same spec, after a
    retry or a crash, changes nothing.
    """

    model_config = ConfigDict(extra="forbid")

    component: ComponentName
    environment: EnvironmentName
    version: VersionLabel
    slot: SlotName
    count: int = Field(..., ge=0, le=100)
    env_overrides: EnvVars | None = Field(
        None, description="the deployment's overrides; None keeps those the set was started with"
    )
    key: str = Field("", max_length=300)
    config_revision: int | None = Field(
        None,
        ge=0,
        description="the configuration revision the set runs (resolved, secrets included, in"
        " the activity that starts it); None keeps the one the set was started with",
    )


class InstanceState(StrEnum):
    RUNNING = "running"
    DEAD = "dead"


class InstanceInfo(BaseModel):
    instance_id: str
    version: str
    slot: str
    url: str
    port: int
    pid: int
    state: InstanceState
    healthy: bool | None = Field(None, description="the router's view; None if unknown")
    started_at: datetime
    log_file: str


class SetInfo(BaseModel):
    slot: str
    version: str
    desired: int
    weight: int
    instances: list[InstanceInfo]
    config_revision: int | None = Field(None, description="the configuration revision it runs")


class TargetState(BaseModel):
    """Everything about one (component, environment): sets, weights and the endpoint."""

    component: str
    environment: str
    endpoint: str | None = Field(None, description="the stable URL clients use (the router)")
    admin_endpoint: str | None = Field(
        None, description="the router's own status and metrics, on 127.0.0.1 only"
    )
    metrics_url: str | None = Field(
        None, description="the router's request metrics by version (Prometheus text)"
    )
    router_pid: int | None = None
    router_alive: bool = False
    generation: int = 0
    weights: dict[str, int] = Field(default_factory=dict)
    sets: list[SetInfo] = Field(default_factory=list)
