"""Schedules: when a workflow type starts by itself, with which input, and what came of it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from core.models.apikeys import Principal
from core.models.durations import Duration
from core.schedule_calendar import BOUNDS, check_cron, parse_field

# A schedule's name becomes part of Temporal ids (`core.ids.schedule_id`), so the same rules
# as a component's name: no `:` or `.`, which keep ids apart.
SCHEDULE_PATTERN = r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$"
ScheduleName = Annotated[
    str, StringConstraints(pattern=SCHEDULE_PATTERN, min_length=2, max_length=63)
]
# Names the system keeps for the schedules it makes itself (e.g. `r2c up`'s health checks).
RESERVED_SCHEDULE_PREFIXES = ("system-", "r2c-")

OverlapPolicy = Literal[
    "skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"
]
SCHEDULED_START_WORKFLOW = "scheduled-start"
"""The wrapper a schedule starts for types whose start the API's own rules govern."""
START_SCHEDULED_ACTIVITY = "start-scheduled"
MIN_INTERVAL_SECONDS = 1.0
MAX_JITTER_SECONDS = 86_400.0
MIN_CATCHUP_SECONDS = 10.0  # Temporal's own floor
MAX_SPECS = 10
MAX_NOTE = 500
MAX_BACKFILL = timedelta(days=7)
NEXT_RUNS_SHOWN = 5
RECENT_RUNS_SHOWN = 10


def _reserved(name: str) -> str:
    if name.startswith(RESERVED_SCHEDULE_PREFIXES):
        raise ValueError(
            f"names starting with {' or '.join(RESERVED_SCHEDULE_PREFIXES)} are the system's"
        )
    return name


OwnScheduleName = Annotated[ScheduleName, AfterValidator(_reserved)]
Note = Annotated[str, StringConstraints(max_length=MAX_NOTE)]
CronText = Annotated[
    str, StringConstraints(max_length=200, strip_whitespace=True), AfterValidator(check_cron)
]


class IntervalSpec(BaseModel):
    """Every `every` seconds since the epoch, shifted by `offset` (`every: 1h, offset: 15m`
    runs at a quarter past each hour)."""

    model_config = ConfigDict(extra="forbid")

    every: Duration = Field(..., ge=MIN_INTERVAL_SECONDS, description="e.g. 30s, 5m, 1h")
    offset: Duration = Field(0, description="shifts each time; less than `every`")

    @model_validator(mode="after")
    def _offset_below_every(self) -> IntervalSpec:
        if self.offset >= self.every:
            raise ValueError("offset must be shorter than every")
        return self


class CalendarSpec(BaseModel):
    """Calendar times, field by field, each `*`, `5`, `1-5`, `*/15` or a comma list of those
    (day_of_week: 0 = Sunday). Unset time fields mean 0: `{hour: "2"}` is 02:00:00 daily."""

    model_config = ConfigDict(extra="forbid")

    second: str = "0"
    minute: str = "0"
    hour: str = "0"
    day_of_month: str = "*"
    month: str = "*"
    day_of_week: str = "*"
    comment: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _fields_parse(self) -> CalendarSpec:
        for name in BOUNDS:
            parse_field(name, getattr(self, name))
        return self


class ScheduleSpec(BaseModel):
    """When runs start: the union of `cron`, `intervals` and `calendars`, between `start_at`
    and `end_at`, in `time_zone`, each delayed by a random part of `jitter`."""

    model_config = ConfigDict(extra="forbid")

    cron: list[CronText] = Field(
        default_factory=list, max_length=MAX_SPECS, description='e.g. "0 2 * * 1-5"'
    )
    intervals: list[IntervalSpec] = Field(default_factory=list, max_length=MAX_SPECS)
    calendars: list[CalendarSpec] = Field(default_factory=list, max_length=MAX_SPECS)
    time_zone: str | None = Field(
        None, max_length=64, description="IANA name (Europe/Berlin); default UTC"
    )
    jitter: Duration = Field(0, le=MAX_JITTER_SECONDS, description="at most 1 day")
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone name") from None
        return value

    @model_validator(mode="after")
    def _some_time(self) -> ScheduleSpec:
        if not (self.cron or self.intervals or self.calendars):
            raise ValueError("give at least one of cron, intervals or calendars")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        return self


class ScheduleDefinition(BaseModel):
    """Everything about a schedule a caller sets (PUT replaces it all)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(..., max_length=100, description="a workflow type, e.g. deployment")
    input: dict[str, Any] = Field(
        default_factory=dict, description="that type's input, checked as a start checks it"
    )
    spec: ScheduleSpec
    overlap: OverlapPolicy = Field(
        "skip", description="what a run due while the previous one still runs does"
    )
    catchup_window: Duration | None = Field(
        None,
        ge=MIN_CATCHUP_SECONDS,
        description="how late a missed run (Temporal was away) may still start; default 1 year",
    )
    pause_on_failure: bool = False
    paused: bool = False
    note: Note = ""


class ScheduleCreate(ScheduleDefinition):
    id: OwnScheduleName


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note = ""


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap: OverlapPolicy | None = Field(None, description="default: the schedule's")


class BackfillBody(BaseModel):
    """Runs for the times from start_at to end_at (both included), as if they passed now."""

    model_config = ConfigDict(extra="forbid")

    start_at: AwareDatetime
    end_at: AwareDatetime
    overlap: OverlapPolicy | None = Field(None, description="default: the schedule's")

    @model_validator(mode="after")
    def _bounded(self) -> BackfillBody:
        if self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        if self.end_at - self.start_at > MAX_BACKFILL:
            raise ValueError(f"a backfill covers at most {MAX_BACKFILL.days} days")
        return self


class ScheduledRun(BaseModel):
    """One run the schedule started, and what came of it."""

    workflow_id: str
    run_id: str
    scheduled_at: datetime
    started_at: datetime
    status: str = Field(description="running, completed, failed, ... (unknown: not found)")
    outcome: str | None = Field(
        None, description="scheduled deployments: `started <deployment>` or `skipped: <why>`"
    )


class ScheduleCounts(BaseModel):
    actions: int
    skipped_overlap: int
    missed_catchup_window: int


class ScheduleView(BaseModel):
    """A schedule as the API shows it."""

    id: str
    type: str
    input: dict[str, Any]
    spec: ScheduleSpec | None = Field(description="as written; none for one made elsewhere")
    overlap: OverlapPolicy
    catchup_window: float | None
    pause_on_failure: bool
    paused: bool
    note: str
    created_by: str | None
    created_at: datetime | None
    updated_at: datetime | None
    next_runs: list[datetime] = Field(description=f"the next {NEXT_RUNS_SHOWN} start times")
    running: list[str] = Field(description="workflow ids of its runs still running")
    last_runs: list[ScheduledRun] = Field(
        description=f"at most {RECENT_RUNS_SHOWN}, newest first (detail view only)"
    )
    counts: ScheduleCounts
    temporal_ui: str


class SchedulePage(BaseModel):
    items: list[ScheduleView]


class ScheduledStartInput(BaseModel):
    """The wrapper workflow's input: what to start and as whom. No secrets: a scheduled
    deployment may not carry `env` values (see `api.services.schedules`)."""

    schedule: str
    type: str
    input: dict[str, Any]
    role: str = Field(description="the role of the key that created the schedule")


class ScheduledStartResult(BaseModel):
    """What a scheduled start did: started (with what) or skipped (with why)."""

    outcome: Literal["started", "skipped"]
    workflow_id: str | None = None
    run_id: str | None = None
    deployment_id: str | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.outcome == "skipped":
            return f"skipped: {self.reason}"
        return f"started {self.deployment_id or self.workflow_id}"


class SchedulePrincipal(Principal):
    """The identity a scheduled start acts as: `schedule:<id>`, with the role of the key that
    created the schedule (a schedule can do no more than its creator could)."""

    @property
    def initiator(self) -> str:
        return f"schedule:{self.name}"
