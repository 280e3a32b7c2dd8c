"""DORA figures from deployment rows: pure computation, no store, no clock.

Definitions (docs/observability.md says the same to users):

- deployment frequency: successful deployments per day of the window;
- lead time: from a deployment's creation to its success (p50 and mean);
- change failure rate: deployments that ended `rolled_back` or `failed` over all that ended.
  An `aborted` one counts as ended but not failed: a person (or an approval window) stopped
  it, usually before it hurt anybody;
- time to restore: from the end of the first failed change of a run of failures of a target
  to the end of that target's next success (p50 and mean); a run not yet ended by a success
  is not counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.models.deployments import DeploymentState
from core.models.insights import Dora

FAILED_CHANGE = frozenset({DeploymentState.ROLLED_BACK.value, DeploymentState.FAILED.value})
ENDED = frozenset(
    {
        DeploymentState.SUCCEEDED.value,
        DeploymentState.ROLLED_BACK.value,
        DeploymentState.FAILED.value,
        DeploymentState.ABORTED.value,
    }
)


@dataclass(frozen=True)
class DeploymentFact:
    """What the figures need of one deployment row."""

    component: str
    environment: str
    strategy: str
    state: str
    created_at: datetime
    finished_at: datetime | None


Target = tuple[str, str]


def dora(facts: Iterable[DeploymentFact], window_seconds: float) -> Dora:
    """The four figures of `facts` (any targets), over a window of `window_seconds`."""
    rows = list(facts)
    ended = [f for f in rows if f.state in ENDED and f.finished_at is not None]
    wins = [f for f in ended if f.state == DeploymentState.SUCCEEDED.value]
    failed = [f for f in ended if f.state in FAILED_CHANGE]
    leads = [_seconds(f.created_at, f.finished_at) for f in wins if f.finished_at]
    targets: dict[Target, list[DeploymentFact]] = {}
    for f in ended:
        targets.setdefault((f.component, f.environment), []).append(f)
    restores = [t for target in sorted(targets) for t in restore_times(targets[target])]
    return Dora(
        deployments=len(rows),
        finished=len(ended),
        succeeded=len(wins),
        failed_changes=len(failed),
        deployment_frequency_per_day=len(wins) / (window_seconds / 86400),
        lead_time_p50_seconds=_median(leads),
        lead_time_mean_seconds=_mean(leads),
        change_failure_rate=len(failed) / len(ended) if ended else None,
        time_to_restore_p50_seconds=_median(restores),
        time_to_restore_mean_seconds=_mean(restores),
        restores=len(restores),
    )


def by_target(facts: Iterable[DeploymentFact], window_seconds: float) -> dict[Target, Dora]:
    """The figures of each (component, environment), sorted by target."""
    groups: dict[Target, list[DeploymentFact]] = {}
    for f in facts:
        groups.setdefault((f.component, f.environment), []).append(f)
    return {t: dora(groups[t], window_seconds) for t in sorted(groups)}


def restore_times(ended: Sequence[DeploymentFact]) -> list[float]:
    """Seconds from the first failed change of each run of failures of one target to the
    next success; aborted deployments neither start nor end a run."""
    times: list[float] = []
    broken_since: datetime | None = None
    for f in sorted(ended, key=lambda f: (f.finished_at or f.created_at, f.created_at)):
        if f.finished_at is None:
            continue
        if f.state in FAILED_CHANGE and broken_since is None:
            broken_since = f.finished_at
        elif f.state == DeploymentState.SUCCEEDED.value and broken_since is not None:
            times.append(_seconds(broken_since, f.finished_at))
            broken_since = None
    return times


def reason_class(state: str, reason: str | None) -> str | None:
    """Why a deployment was undone, as one of analysis, deadline, abort, error (None when it
    was not undone). The workflow records these reasons: a failed analysis rolls back
    (`rolled_back`), the progress deadline fails with "progress deadline exceeded", an abort
    or a cancellation or an approval window that closed ends `aborted`, anything else that
    fails is an error."""
    if state == DeploymentState.ROLLED_BACK.value:
        return "analysis"
    if state == DeploymentState.ABORTED.value:
        return "abort"
    if state == DeploymentState.FAILED.value:
        return "deadline" if reason and "progress deadline" in reason else "error"
    return None


def _seconds(start: datetime, end: datetime | None) -> float:
    assert end is not None
    return max(0.0, (end - start).total_seconds())


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _mean(values: list[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None
