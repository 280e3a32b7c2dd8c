"""Contracts of the `component-health-check` workflow and its activities."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class HealthCheckInput(BaseModel):
    """Which components to probe, and how often.

    With the defaults, one round over every component that has running instances. More
    rounds turn it into a watch that probes every `interval_seconds` until done or cancelled.
    """

    model_config = ConfigDict(extra="forbid")

    components: list[str] = Field(
        default_factory=list, description="component names; empty means every component"
    )
    environment: str | None = Field(None, description="only instances of this environment")
    rounds: int = Field(1, ge=1, le=10_000)
    interval_seconds: float = Field(30.0, ge=1, le=86_400)


class TargetQuery(BaseModel):
    """Which components' running instances to look up."""

    components: list[str] = Field(default_factory=list)
    environment: str | None = None


class HealthTarget(BaseModel):
    """One component to probe: where its instances answer and how to judge them."""

    component: str
    path: str
    timeout_seconds: float
    instances: list[InstanceRef]


class InstanceRef(BaseModel):
    """A running instance as the infrastructure reports it."""

    instance_id: str
    environment: str
    version: str
    url: str


class HealthState(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class InstanceHealth(BaseModel):
    instance_id: str
    environment: str
    version: str
    url: str
    healthy: bool
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None


class ComponentHealth(BaseModel):
    component: str
    state: HealthState
    healthy_instances: int
    total_instances: int
    instances: list[InstanceHealth]


class HealthRound(BaseModel):
    round: int
    checked_at: datetime
    components: list[ComponentHealth]


class HealthReport(BaseModel):
    """The workflow's result: the last round in full, and a summary of every round."""

    rounds_completed: int
    last: HealthRound | None
    unhealthy_rounds: int = Field(description="rounds in which any component was not healthy")


class HealthCheckProgress(BaseModel):
    """What the `status` query answers while the check runs."""

    phase: str
    round: int
    rounds: int
    components_probed: int
    components_total: int
    last: HealthRound | None = None


HealthTarget.model_rebuild()


# --------------------------------------------------------------------------- component health
# What the rounds leave behind: one state per component, kept in the store (issue 10).


class Condition(StrEnum):
    """A component's health as the store keeps it between rounds. A degraded round (some
    instances fail) counts as unhealthy; `unknown` means no instance of it runs."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


class ComponentHealthStatus(BaseModel):
    """`health` of a component in the API: its state, and since when."""

    state: Condition = Field(description="healthy, unhealthy, or unknown (nothing runs)")
    since: datetime | None = Field(
        None, description="when it entered this state; null until the first health check"
    )
    checked_at: datetime | None = Field(None, description="the last health check's round")
    reason: str | None = Field(None, description="what the last round found")


NOT_CHECKED = ComponentHealthStatus(state=Condition.UNKNOWN, reason="not checked yet")


class HealthRecordRequest(BaseModel):
    """A finished round and the scope it covered, to turn into per-component states.

    `components` empty means the round covered every component: one found without running
    instances is then `unknown`. A round of one environment records nothing (a component's
    state is about all of its instances)."""

    round: HealthRound
    components: list[str] = Field(default_factory=list)
    environment: str | None = None


class HealthChange(BaseModel):
    """One component whose state changed in a round."""

    component: str
    previous: Condition | None
    state: Condition
    since: datetime
    reason: str


class HealthRecordResult(BaseModel):
    recorded: int = Field(description="components whose state the round wrote")
    changes: list[HealthChange]
