"""Promotion pipelines: an ordered list of environments with gates between them (docs/pipelines.md).

A run promotes one exact combination of component versions stage by stage; each stage is a
release (core/models/releases.py) of that combination into the stage's environment. Once a
stage's release succeeded and its post-promotion analysis (if any) passed, the combination is
*verified* there, and only a combination verified upstream may enter the next stage.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.models.analysis import AnalysisSpec
from core.models.durations import Duration
from core.models.names import ComponentName, EnvironmentName, VersionLabel
from core.models.releases import MAX_RELEASE_COMPONENTS
from core.models.roles import Role

PIPELINE_WORKFLOW = "pipeline"
MAX_STAGES = 10
MAX_APPROVALS = 5

CHECK_GATES_ACTIVITY = "pipeline-check-gates"
PREPARE_RELEASE_ACTIVITY = "pipeline-prepare-release"
RECORD_VERIFIED_ACTIVITY = "pipeline-record-verified"
RECORD_RUN_ACTIVITY = "pipeline-record-run"

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

PipelineName = EnvironmentName
"""A pipeline's name: the shared name type (lower case, digits, `-`; it becomes a workflow id)."""


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_WEEKDAYS = list(Weekday)


class Approval(BaseModel):
    model_config = _STRICT

    role: Literal[Role.OPERATOR, Role.ADMIN] = Role.OPERATOR
    count: int = Field(1, ge=1, le=MAX_APPROVALS, description="distinct approvers needed")


class Window(BaseModel):
    """When promotion into the stage may start: on `days`, between `start` and `end` (local
    time in `time_zone`; `end` after `start`, same day)."""

    model_config = _STRICT

    days: list[Weekday] = Field(..., min_length=1, max_length=7)
    start: str = Field(..., description="HH:MM")
    end: str = Field(..., description="HH:MM, after start")
    time_zone: str = Field(..., max_length=64, description="an IANA name, e.g. Europe/Paris")

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.fullmatch(value):
            raise ValueError(f"{value!r} is not a time of day; write HH:MM, e.g. 09:00")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            if not re.fullmatch(r"[A-Za-z0-9_+\-/]{1,64}", value) or ".." in value:
                raise ZoneInfoNotFoundError(value)
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a known time zone; use an IANA name such as Europe/Paris"
            ) from None
        return value

    @model_validator(mode="after")
    def _order(self) -> Window:
        if len(set(self.days)) != len(self.days):
            raise ValueError("days lists a day twice")
        if self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start} (same day)")
        return self

    def seconds_until_open(self, now: datetime) -> float:
        """0 while the window is open at `now` (aware), else the seconds until it next opens."""
        zone = ZoneInfo(self.time_zone)
        local = now.astimezone(zone)
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            if _WEEKDAYS[day.weekday()] not in self.days:
                continue
            opens = datetime.combine(day, start, zone)
            closes = datetime.combine(day, end, zone)
            if offset == 0 and opens <= local < closes:
                return 0.0
            if opens > local:
                return (opens - local).total_seconds()
        raise AssertionError("a window with at least one day opens within a week")


class Requires(BaseModel):
    """Fan-in: the combination must be verified in all (or one) of `from`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: list[EnvironmentName] = Field(
        ..., alias="from", min_length=1, max_length=MAX_STAGES, serialization_alias="from"
    )
    mode: Literal["all", "one"] = "all"


class Gates(BaseModel):
    model_config = _STRICT

    soak: Duration | None = Field(
        None, description="time since the combination was verified upstream (0s..30d)"
    )
    approval: Approval | None = None
    window: Window | None = None
    analysis: AnalysisSpec | None = Field(
        None, description="post-promotion verification on the environment just deployed"
    )


class Stage(BaseModel):
    model_config = _STRICT

    environment: EnvironmentName
    requires: Requires | None = Field(None, description="default: the previous stage, all")
    gates: Gates = Field(default_factory=Gates)
    auto_promote: bool = False
    auto_rollback: bool = False


class PipelineSpec(BaseModel):
    """A pipeline's definition (PUT replaces it whole)."""

    model_config = _STRICT

    stages: list[Stage] = Field(..., min_length=1, max_length=MAX_STAGES)

    @model_validator(mode="after")
    def _graph(self) -> PipelineSpec:
        seen: list[str] = []
        for number, stage in enumerate(self.stages):
            if stage.environment in seen:
                raise ValueError(f"stages[{number}]: environment {stage.environment} twice")
            for env in stage.requires.from_ if stage.requires else []:
                if env == stage.environment:
                    raise ValueError(f"stages[{number}].requires: {env} requires itself")
                if env not in seen:
                    later = any(s.environment == env for s in self.stages)
                    raise ValueError(
                        f"stages[{number}].requires: {env} is "
                        + ("a later stage" if later else "not a stage of the pipeline")
                        + "; a stage may require only stages listed before it"
                    )
            seen.append(stage.environment)
        return self

    def downstream(self, environment: str) -> list[str]:
        """The environments whose stage requires `environment`, directly or through another
        stage, in pipeline order (where a rollback there may be propagated)."""
        reached = {environment}
        found: list[str] = []
        for number, stage in enumerate(self.stages):
            if stage.environment != environment and reached & set(self.upstream(number)[0]):
                reached.add(stage.environment)
                found.append(stage.environment)
        return found

    def upstream(self, number: int) -> tuple[list[str], Literal["all", "one"]]:
        """The environments stage `number` requires, and how many of them."""
        stage = self.stages[number]
        if stage.requires is not None:
            return list(stage.requires.from_), stage.requires.mode
        return ([self.stages[number - 1].environment] if number else []), "all"


class PipelineRequest(PipelineSpec):
    name: PipelineName


# ----------------------------------------------------------------------------- runs

Combination = dict[ComponentName, VersionLabel]


class RunRequest(BaseModel):
    model_config = _STRICT

    components: Combination = Field(..., min_length=1, max_length=MAX_RELEASE_COMPONENTS)


class RunAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    APPROVE = "approve"
    PROMOTE = "promote"


class RunState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"


FINAL_RUN_STATES = frozenset(
    {RunState.SUCCEEDED, RunState.FAILED, RunState.ABORTED, RunState.ROLLED_BACK}
)


class StageState(StrEnum):
    PENDING = "pending"
    WAITING = "waiting"
    RELEASING = "releasing"
    VERIFYING = "verifying"
    VERIFIED = "verified"
    FAILED = "failed"
    BLOCKED = "blocked"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"


class Approved(BaseModel):
    by: str
    role: Role
    at: datetime


class StageProgress(BaseModel):
    environment: str
    state: StageState = StageState.PENDING
    waiting_on: str | None = Field(None, description="the gate waited on: soak, window, ...")
    why: str | None = Field(None, description="what the gate waits for, in words")
    until: datetime | None = Field(None, description="when a timed wait ends")
    approvals: list[Approved] = Field(default_factory=list)
    promoted_by: str | None = None
    release_id: str | None = None
    release_state: str | None = None
    reason: str | None = None
    rollback_release_id: str | None = None
    started_at: datetime | None = Field(None, description="when its gates began")
    released_at: datetime | None = Field(None, description="when its release began")
    verified_at: datetime | None = None


class RunStatus(BaseModel):
    """What the run's `status` query answers, and what the store keeps."""

    pipeline: str
    run_id: str
    components: dict[str, str]
    state: RunState = RunState.RUNNING
    reason: str | None = None
    stages: list[StageProgress] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    propagated_from: str | None = Field(
        None, description="a rollback propagation: the environment whose combination it moves"
    )


class RunInput(BaseModel):
    pipeline: str
    run_id: str
    spec: PipelineSpec
    components: dict[str, str]
    initiator: str = Field(..., max_length=300)
    carried: RunStatus | None = Field(None, description="the status a continue-as-new carries")
    propagate_from: str | None = Field(
        None,
        description="a rollback propagation: move each stage (all downstream of this "
        "environment) to `components`, the combination serving there, without the gates",
    )


class RunActionRequest(BaseModel):
    """An action on a run, as the API sends it (the role is checked at the API too)."""

    action: RunAction
    by: str = Field("", max_length=300)
    role: Role = Role.OPERATOR
    reason: str = Field("", max_length=500)


def pipeline_workflow_id(pipeline: str, run_id: str) -> str:
    return f"{PIPELINE_WORKFLOW}:{pipeline}:{run_id}"


# ----------------------------------------------------------------------------- activities


class LastVerified(BaseModel):
    """The environment's verified combination before this one (None: never any)."""

    components: dict[str, str] | None = None
    rollback: bool = False


class GateCheck(BaseModel):
    pipeline: str
    environment: str
    upstream: list[str]
    components: dict[str, str]
    window: Window | None = None
    now: datetime
    auto_promote: bool = False
    release_id: str | None = Field(
        None, description="the stage's release, whose deployments the policy gate checks"
    )


class GateAnswer(BaseModel):
    verified_at: dict[str, datetime] = Field(
        default_factory=dict, description="upstream environment -> when the combination was"
    )
    line_stop: str | None = Field(None, description="why the line is stopped, and who by")
    hold: str | None = Field(None, description="why promotion into the environment is held")
    window_wait: float = Field(0.0, description="seconds until the schedule window opens")
    last_verified: LastVerified = Field(
        default_factory=lambda: LastVerified(), description="the environment's, before this run"
    )
    policy_refusal: str | None = Field(
        None, description="what the environment's policy forbids that waiting will not change"
    )
    policy_frozen: str | None = Field(None, description="the policy's freeze window in force")
    policy_until: datetime | None = Field(None, description="when that freeze ends")


class PrepareStage(BaseModel):
    pipeline: str
    run_id: str
    environment: str
    components: dict[str, str]
    release_id: str


class PreparedStage(BaseModel):
    input: dict[str, object] | None = None
    refused: str | None = None


class VerifiedRecord(BaseModel):
    pipeline: str
    environment: str
    components: dict[str, str]
    run_id: str
    verified_at: datetime
    rollback: bool = Field(False, description="put there by an automatic rollback")
    hold: str | None = Field(
        None, description="hold auto-promotion into the environment, for this reason"
    )
