"""Schedule specs as users write them: what is refused (with the reason), and what Temporal
is given."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import ScheduleOverlapPolicy, ScheduleRange

from api.services.schedules_temporal import build, temporal_spec
from core.models.health import HealthCheckInput
from core.models.schedules import BackfillBody, ScheduleCreate, ScheduleSpec
from core.schedule_calendar import check_cron, parse_field


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("*", [ScheduleRange(0, 59)]),
        ("5", [ScheduleRange(5)]),
        ("1-5", [ScheduleRange(1, 5)]),
        ("*/15", [ScheduleRange(0, 59, 15)]),
        ("10/20", [ScheduleRange(10, 59, 20)]),
        ("1,3-4", [ScheduleRange(1), ScheduleRange(3, 4)]),
    ],
)
def test_fields_become_temporal_ranges(text: str, ranges: list[ScheduleRange]) -> None:
    assert parse_field("minute", text) == ranges


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("minute", "60", "outside 0-59"),
        ("hour", "5-2", "runs backwards"),
        ("day_of_week", "7", "outside 0-6"),
        ("month", "0", "outside 1-12"),
        ("minute", "*/0", "at least 1"),
        ("minute", "MON", "is not *"),
        ("minute", "", "write a value"),
        ("minute", ",".join(["1"] * 51), "at most 100 characters"),
    ],
)
def test_bad_fields_say_what_is_wrong(name: str, text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_field(name, text)


def test_cron_takes_five_fields_or_a_macro() -> None:
    assert check_cron(" 0 2 * * 1-5 ") == "0 2 * * 1-5"
    assert check_cron("@daily") == "@daily"
    for bad in ("0 2 * *", "0 0 2 * * 1", "@every 5m", "0 24 * * *"):
        with pytest.raises(ValueError):
            check_cron(bad)


def spec(**fields: Any) -> ScheduleSpec:
    return ScheduleSpec.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({}, "at least one of cron, intervals or calendars"),
        ({"intervals": [{"every": "0.5s"}]}, "greater than or equal to 1"),
        ({"intervals": [{"every": "1m", "offset": "1m"}]}, "offset must be shorter"),
        ({"intervals": [{"every": "1m"}] * 11}, "at most 10"),
        ({"cron": ["@hourly"], "time_zone": "Nowhere/Town"}, "not an IANA time zone"),
        ({"cron": ["@hourly"], "jitter": "25h"}, "less than or equal to 86400"),
        (
            {"cron": ["@hourly"], "start_at": "2026-02-01T00:00:00Z",
             "end_at": "2026-01-01T00:00:00Z"},
            "end_at must be after start_at",
        ),
        ({"cron": ["@hourly"], "start_at": "2026-01-01T00:00:00"}, "timezone"),
        ({"calendars": [{"hour": "25"}]}, "outside 0-23"),
    ],
)  # fmt: skip
def test_bad_specs_are_refused(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        spec(**fields)


def test_reserved_and_malformed_ids_are_refused() -> None:
    base = {"type": "component-health-check", "spec": {"cron": ["@hourly"]}}
    for bad in ("system-x", "r2c-x", "Upper", "a:b", "a.b", "x", "-a"):
        with pytest.raises(ValidationError):
            ScheduleCreate.model_validate({**base, "id": bad})
    assert ScheduleCreate.model_validate({**base, "id": "nightly-2"}).id == "nightly-2"


def test_a_backfill_is_at_most_seven_days() -> None:
    ok = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-08T00:00:00Z"}
    BackfillBody.model_validate(ok)
    with pytest.raises(ValidationError, match="at most 7 days"):
        BackfillBody.model_validate({**ok, "end_at": "2026-01-08T00:00:01Z"})


def test_temporal_gets_the_spec_policies_and_the_initiator() -> None:
    body = ScheduleCreate.model_validate(
        {
            "id": "nightly",
            "type": "component-health-check",
            "spec": {
                "cron": ["0 2 * * 1-5"],
                "intervals": [{"every": "1h", "offset": "15m"}],
                "calendars": [{"hour": "3", "day_of_week": "0,6"}],
                "time_zone": "Europe/Berlin",
                "jitter": "30s",
            },
            "overlap": "buffer_one",
            "catchup_window": "10m",
            "note": "n",
        }
    )
    schedule = build(
        "nightly", body, HealthCheckInput(), created_by="apikey:a", role="operator",
        task_queue="q",
    )  # fmt: skip
    s = temporal_spec(body.spec)
    assert s.cron_expressions == ["0 2 * * 1-5"] and s.time_zone_name == "Europe/Berlin"
    assert s.intervals[0].every == timedelta(hours=1)
    assert s.intervals[0].offset == timedelta(minutes=15)
    assert s.calendars[0].day_of_week == [ScheduleRange(0), ScheduleRange(6)]
    assert s.jitter == timedelta(seconds=30)
    assert schedule.policy.overlap == ScheduleOverlapPolicy.BUFFER_ONE
    assert schedule.policy.catchup_window == timedelta(minutes=10)
    assert schedule.state.note == "n"
    action: Any = schedule.action
    assert action.id == "r2c:schedule:nightly" and action.task_queue == "q"
    initiator = [p.value for p in action.typed_search_attributes.search_attributes]
    assert initiator == ["schedule:nightly"]


def test_deployments_go_through_the_wrapper_without_env() -> None:
    request = {"component": "demo", "environment": "prod", "version": "v2"}
    body = ScheduleCreate.model_validate(
        {"id": "nightly", "type": "deployment", "input": request, "spec": {"cron": ["@daily"]}}
    )
    schedule = build("nightly", body, None, created_by="apikey:a", role="operator", task_queue="q")
    action: Any = schedule.action
    assert action.workflow == "scheduled-start"
    (arg,) = action.args
    assert (arg.schedule, arg.type, arg.input, arg.role) == (
        "nightly", "deployment", request, "operator",
    )  # fmt: skip
