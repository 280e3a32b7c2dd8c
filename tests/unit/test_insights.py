"""DORA figures from hand-built deployment rows: exact numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from core.insights import DeploymentFact, by_target, dora, reason_class, restore_times
from core.models.insights import Window, window_seconds

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86400.0


def fact(
    state: str,
    created: float,
    finished: float | None,
    component: str = "web",
    environment: str = "prod",
) -> DeploymentFact:
    return DeploymentFact(
        component=component,
        environment=environment,
        strategy="rolling",
        state=state,
        created_at=T0 + timedelta(seconds=created),
        finished_at=None if finished is None else T0 + timedelta(seconds=finished),
    )


def test_the_four_figures_of_one_target() -> None:
    rows = [
        fact("succeeded", 0, 60),  # lead 60
        fact("rolled_back", 1000, 1100),  # a failure run starts at 1100
        fact("failed", 2000, 2050),  # the same run
        fact("succeeded", 3000, 3300),  # lead 300; restores after 3300 - 1100 = 2200
        fact("aborted", 4000, 4010),  # ended, not a failed change
        fact("failed", 5000, 5100),  # a run starts at 5100
        fact("succeeded", 6000, 6120),  # lead 120; restores after 1020
        fact("progressing", 7000, None),  # not ended: counted as a deployment only
    ]
    d = dora(rows, 2 * DAY)
    assert (d.deployments, d.finished, d.succeeded, d.failed_changes) == (8, 7, 3, 3)
    assert d.deployment_frequency_per_day == 1.5
    assert d.lead_time_p50_seconds == 120.0
    assert d.lead_time_mean_seconds == 160.0
    assert d.change_failure_rate == 3 / 7
    assert d.restores == 2
    assert d.time_to_restore_p50_seconds == 1610.0
    assert d.time_to_restore_mean_seconds == 1610.0


def test_no_deployments_gives_no_figures_rather_than_zeros() -> None:
    d = dora([], 30 * DAY)
    assert d.deployments == 0 and d.deployment_frequency_per_day == 0.0
    assert d.lead_time_p50_seconds is None and d.change_failure_rate is None
    assert d.time_to_restore_mean_seconds is None


def test_a_failure_run_not_yet_restored_is_not_counted() -> None:
    assert restore_times([fact("succeeded", 0, 10), fact("failed", 20, 30)]) == []


def test_restores_are_per_target_never_across_targets() -> None:
    rows = [
        fact("failed", 0, 100, environment="prod"),
        fact("succeeded", 200, 400, environment="staging"),  # not prod's restore
        fact("succeeded", 500, 700, environment="prod"),  # prod restored after 600
    ]
    overall = dora(rows, DAY)
    assert overall.restores == 1 and overall.time_to_restore_mean_seconds == 600.0
    per = by_target(rows, DAY)
    assert list(per) == [("web", "prod"), ("web", "staging")]
    assert per[("web", "prod")].change_failure_rate == 0.5
    assert per[("web", "staging")].change_failure_rate == 0.0
    assert per[("web", "staging")].lead_time_mean_seconds == 200.0


@pytest.mark.parametrize(
    ("state", "reason", "expected"),
    [
        ("rolled_back", "metric error-rate failed 3 times", "analysis"),
        ("aborted", "aborted by alice", "abort"),
        ("aborted", "no approval within 3600s at step 1", "abort"),
        ("failed", "no progress for 600s (progress deadline exceeded)", "deadline"),
        ("failed", "activity failed: start_set", "error"),
        ("succeeded", None, None),
    ],
)
def test_reason_classes(state: str, reason: str | None, expected: str | None) -> None:
    assert reason_class(state, reason) == expected


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * DAY), ("12h", 43200.0), ("365d", 365 * DAY)]
)
def test_windows(text: str, seconds: float) -> None:
    assert window_seconds(TypeAdapter(Window).validate_python(text)) == seconds


@pytest.mark.parametrize("text", ["366d", "0d", "30", "1w", "-1d", "", "8761h", "30d; drop"])
def test_bad_windows_are_refused_with_the_syntax(text: str) -> None:
    with pytest.raises(ValidationError, match="365d|e.g. 12h"):
        TypeAdapter(Window).validate_python(text)
