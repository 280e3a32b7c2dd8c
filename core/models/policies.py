"""Environment policies: what a deployment or a configuration change in an environment must
respect, as data (CEL rules for what the fixed fields cannot say)."""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from core.judge.spec import VerdictPolicy
from core.models.apikeys import Role
from core.models.durations import Duration
from core.models.names import EnvironmentName

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
MAX_RULES = 20
MAX_WINDOWS = 50
MAX_EXPRESSION_LENGTH = 1000
# At most this many different approvers can be required: more is a typo, not a policy.
MAX_APPROVERS = 5
RULE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"

StrategyType = Literal["canary", "blue_green", "rolling"]


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """Monday is 0, as `datetime.weekday()` counts."""
        return list(Weekday).index(self)


class FreezeWindow(BaseModel):
    """No deployment or configuration change from `start` (included) to `end` (excluded)."""

    model_config = _STRICT
    start: AwareDatetime
    end: AwareDatetime
    reason: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> FreezeWindow:
        if self.end <= self.start:
            raise ValueError("a freeze window's end must be after its start")
        return self


class WeeklyFreezeWindow(BaseModel):
    """A freeze every week on `days`, from `start` to `end` (UTC times of day, `HH:MM`; start
    included, end excluded). An `end` at or before `start` runs past midnight into the next
    day: `fri 18:00-06:00` freezes Friday evening until Saturday 06:00."""

    model_config = _STRICT
    days: list[Weekday] = Field(..., min_length=1, max_length=7)
    start: time
    end: time
    reason: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _plain_times(self) -> WeeklyFreezeWindow:
        for t in (self.start, self.end):
            if t.tzinfo is not None and t.utcoffset():
                raise ValueError("weekly freeze times are UTC: write them without an offset")
        self.start, self.end = self.start.replace(tzinfo=None), self.end.replace(tzinfo=None)
        return self


class RequiredApproval(BaseModel):
    """A deployment waits until `approvers` different people with one of `roles` (or higher)
    approved it, within `timeout`; otherwise it is aborted."""

    model_config = _STRICT
    roles: list[Role] = Field(default_factory=lambda: [Role.OPERATOR], min_length=1, max_length=3)
    approvers: int = Field(1, ge=1, le=MAX_APPROVERS)
    timeout: Duration = Field(4 * 3600, gt=0)


class PolicyRule(BaseModel):
    """A CEL expression that must be true for a request to be allowed (see docs/policies.md
    for the variables it can read); `message` is what a refused caller reads."""

    model_config = _STRICT
    name: str = Field(..., pattern=RULE_NAME_PATTERN)
    expression: str = Field(..., min_length=1, max_length=MAX_EXPRESSION_LENGTH)
    message: str = Field("", max_length=500)


class PolicySpec(BaseModel):
    """What an admin writes: `PUT /api/v1/policies/{environment}`."""

    model_config = _STRICT
    description: str = Field("", max_length=500)
    allowed_strategies: list[StrategyType] | None = Field(
        None, min_length=1, max_length=3, description="absent: every strategy"
    )
    require_analysis: bool = Field(
        False, description="a deployment must have an analysis step or a background analysis"
    )
    required_approval: RequiredApproval | None = Field(
        None, description="an approval gate the API adds to every deployment's plan"
    )
    config_changes_need_approval: bool = Field(
        False,
        description="configuration written directly is refused (unless an admin overrides); "
        "roll it out as a deployment, which waits for the required approval",
    )
    max_canary_step_weight: int | None = Field(
        None, ge=1, le=100, description="the highest weight a canary step may set below 100%"
    )
    protected: bool = Field(False, description="operators may not write configuration here")
    freeze_windows: list[FreezeWindow] = Field(default_factory=list, max_length=MAX_WINDOWS)
    weekly_freeze_windows: list[WeeklyFreezeWindow] = Field(
        default_factory=list, max_length=MAX_WINDOWS
    )
    rules: list[PolicyRule] = Field(default_factory=list, max_length=MAX_RULES)
    judge_verdicts: VerdictPolicy | None = Field(
        None,
        description="what a judge's verdicts do here, whatever a deployment's analysis says:"
        " warning → approval, continue or rollback; fail → rollback or approval",
    )

    @model_validator(mode="after")
    def _unique_rule_names(self) -> PolicySpec:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        return self


class Policy(PolicySpec):
    """A policy as stored: its environment, version, and who wrote this version when."""

    environment: EnvironmentName
    version: int
    updated_by: str
    updated_at: datetime

    @property
    def label(self) -> str:
        """How a refusal names the policy: `production v3`."""
        return f"{self.environment} v{self.version}"


class PolicyVersion(BaseModel):
    """One version of an environment's policy; a deletion is a version without a `spec`."""

    environment: str
    version: int
    deleted: bool
    spec: PolicySpec | None
    created_by: str
    created_at: datetime


class PolicyVersionPage(BaseModel):
    items: list[PolicyVersion]
    total: int
    next_offset: int | None = None
