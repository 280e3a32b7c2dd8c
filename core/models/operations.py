"""Requests of the infrastructure activities and of the retire workflow."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.models.infrastructure import ENVIRONMENT_PATTERN, SLOT_PATTERN


class TargetRef(BaseModel):
    component: str
    environment: str = Field(..., pattern=ENVIRONMENT_PATTERN)


class SetWeightsRequest(TargetRef):
    weights: dict[str, int]


class RemoveSetRequest(TargetRef):
    slot: str = Field(..., pattern=SLOT_PATTERN)


class RetireRequest(BaseModel):
    """Stop a component's instances and routers: in one environment, or everywhere."""

    model_config = ConfigDict(extra="forbid")

    component: str
    environment: str | None = Field(None, pattern=ENVIRONMENT_PATTERN)


class RetireResult(BaseModel):
    component: str
    environments: list[str]
