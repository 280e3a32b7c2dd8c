"""Configuration changes rolled out like versions: the `roll_out` a change may ask for, the
body of a secret's rotation, and what the answer says about each roll-out started."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.models.configuration import (
    ConfigEntry,
    ConfigValue,
    ConfigWrite,
    Scope,
)
from core.models.deployments import RollingStrategy, Strategy

MIN_GENERATED = 16
MAX_GENERATED = 256


class RollOut(BaseModel):
    """Deploy the change at once to every affected target that runs: each keeps the version it
    runs and takes the new configuration revision, with this strategy (policies apply)."""

    model_config = ConfigDict(extra="forbid")
    strategy: Strategy = Field(default_factory=RollingStrategy)


class ConfigChange(ConfigWrite):
    """The body of `PUT /api/v1/configuration/{key}`: a write, and whether to roll it out."""

    roll_out: RollOut | None = Field(None, description="start the roll-outs of the change")


class Generate(BaseModel):
    """A random secret: `length` URL-safe characters from the operating system's generator."""

    model_config = ConfigDict(extra="forbid")
    length: int = Field(32, ge=MIN_GENERATED, le=MAX_GENERATED)


class Rotation(BaseModel):
    """The body of `POST /api/v1/configuration/{key}/rotate`: the secret's new value, given or
    generated (exactly one of them)."""

    model_config = ConfigDict(extra="forbid")
    scope: Scope = Field(default_factory=Scope, description="the scope of the secret entry")
    value: ConfigValue = Field(None, description="the new value; or ask for `generate`")
    generate: Generate | None = None
    roll_out: RollOut | None = Field(None, description="start the roll-outs of the rotation")
    description: str | None = Field(
        None, max_length=1000, description="absent: the entry's description stays"
    )

    @model_validator(mode="after")
    def _one_source(self) -> Rotation:
        if (self.value is None) == (self.generate is None):
            raise ValueError('give exactly one of "value" (the new secret) or "generate"')
        return self


class RolloutOutcome(BaseModel):
    """One affected target: the deployment started there, or why none could start."""

    component: str
    environment: str
    deployment_id: str | None = None
    status: int = Field(202, description="202: started; else the HTTP status of the refusal")
    error: str | None = Field(None, description="why no deployment started (409: one runs)")


class RolledOutEntry(ConfigEntry):
    """The entry as written, with the roll-outs it started (empty without `roll_out`)."""

    rollouts: list[RolloutOutcome] = Field(default_factory=list)
