"""Requests of the infrastructure activities and of the retire workflow."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.models.names import ComponentName, EnvironmentName, SlotName


class TargetRef(BaseModel):
    component: ComponentName
    environment: EnvironmentName


class SetWeightsRequest(TargetRef):
    weights: dict[str, int]


class RemoveSetRequest(TargetRef):
    slot: SlotName


class RetireRequest(BaseModel):
    """Stop a component's instances and routers: in one environment, or everywhere."""

    model_config = ConfigDict(extra="forbid")

    component: ComponentName
    environment: EnvironmentName | None = Field(None, description="absent: every environment")


class RetireResult(BaseModel):
    component: str
    environments: list[str]
