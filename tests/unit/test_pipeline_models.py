"""Pipeline definitions are validated once, with messages that name the field and the fix; a
schedule window opens where its time zone says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from core.models.pipelines import PipelineRequest, Window

WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "16:00"}


@pytest.mark.parametrize(
    ("stages", "words"),
    [
        ([{"environment": "dev", "requires": {"from": ["prod"]}}], "not a stage of the pipeline"),
        (
            [{"environment": "dev", "requires": {"from": ["prod"]}}, {"environment": "prod"}],
            "stages[0].requires: prod is a later stage",
        ),
        ([{"environment": "dev"}, {"environment": "dev"}], "environment dev twice"),
        ([{"environment": "dev", "gates": {"soak": "31d"}}], "less than or equal to 2592000"),
        (
            [{"environment": "dev", "gates": {"window": {**WEEKDAYS, "time_zone": "Mars/Base"}}}],
            "not a known time zone; use an IANA name",
        ),
        (
            [{"environment": "d", "gates": {"window": {**WEEKDAYS, "time_zone": "../etc/x"}}}],
            "not a known time zone",
        ),
        (
            [{"environment": "d", "gates": {"approval": {"role": "viewer"}}}],
            "approval.role",
        ),
        ([{"environment": f"e{n}"} for n in range(11)], "at most 10 items"),
    ],
)
def test_bad_definitions_are_refused_naming_the_field(
    stages: list[dict[str, Any]], words: str
) -> None:
    with pytest.raises(ValidationError) as err:
        PipelineRequest.model_validate({"name": "p", "stages": stages})
    assert words in str(err.value)


def test_the_window_opens_in_its_time_zone() -> None:
    window = Window.model_validate({**WEEKDAYS, "time_zone": "America/New_York"})
    # Friday 20:00 UTC is 15:00 in New York: open.
    assert window.seconds_until_open(datetime(2026, 11, 27, 20, 0, tzinfo=UTC)) == 0
    # Friday 21:30 UTC (16:30 there): next Monday 09:00 there, 14:00 UTC.
    wait = window.seconds_until_open(datetime(2026, 11, 27, 21, 30, tzinfo=UTC))
    assert (
        wait
        == (
            datetime(2026, 11, 30, 14, 0, tzinfo=UTC) - datetime(2026, 11, 27, 21, 30, tzinfo=UTC)
        ).total_seconds()
    )
