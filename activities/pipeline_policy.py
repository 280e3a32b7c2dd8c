"""The configuration policy gate of a pipeline stage: before the stage's release starts, the
target environment's policy is evaluated against each deployment the release would make, as
the deployments' own start would (api/services/policies.py), so a refusal comes before anything
moves rather than from a child deployment halfway through the release.

A freeze window is waited out (its end is known); anything else the policy forbids (a strategy
not allowed, a required analysis missing, a CEL rule, a required gate that cannot be added)
will not change by waiting, and fails the stage with the policy's message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from activities.releases import release_principal
from api.services import policies
from core import policies as rules
from core.db import policies as policy_store
from core.errors import PermissionDeniedError
from core.models.deployments import DeploymentRequest
from core.models.policies import PolicySpec

MAX_FREEZE_WAIT = timedelta(days=7)
"""The longest a stage waits for a freeze to end; a longer freeze fails the stage."""

_MAX_CHAINED = 50  # freeze windows that follow one another, looked through for the end


@dataclass(frozen=True)
class PolicyGate:
    refusal: str | None = None
    frozen: str | None = None
    until: datetime | None = None


def _weekly_end(days: set[int], start: datetime, end: datetime, now: datetime) -> datetime | None:
    """The end of the weekly window's occurrence `now` is in (start/end: times on any date)."""
    for began in (now, now - timedelta(days=1)):
        if began.weekday() not in days:
            continue
        opened = datetime.combine(began.date(), start.timetz())
        closed = datetime.combine(began.date(), end.timetz())
        if closed <= opened:
            closed += timedelta(days=1)
        if opened <= now < closed:
            return closed
    return None


def freeze_end(spec: PolicySpec, now: datetime) -> datetime | None:
    """When every freeze window in force at `now` (and those it runs into) has ended; None
    when none is in force."""
    at = now.astimezone(UTC)
    ended: datetime | None = None
    for _ in range(_MAX_CHAINED):
        ends = [w.end for w in spec.freeze_windows if rules.in_window(w, at)]
        for weekly in spec.weekly_freeze_windows:
            anchor = datetime.combine(at.date(), weekly.start, UTC)
            closes = datetime.combine(at.date(), weekly.end, UTC)
            end = _weekly_end({d.number for d in weekly.days}, anchor, closes, at)
            if end is not None:
                ends.append(end)
        if not ends:
            return ended
        ended = at = max(ends).astimezone(UTC)
    return ended


async def policy_gate(
    session: AsyncSession,
    environment: str,
    components: dict[str, str],
    release_id: str,
    now: datetime,
) -> PolicyGate:
    """What the environment's policy says of the release's deployments, read now."""
    policy = await policy_store.find(session, environment)
    if policy is None:
        return PolicyGate()
    frozen = rules.active_freeze(policy, now)
    if frozen is not None:
        until = freeze_end(policy, now)
        why = f"policy {policy.label}: rule {frozen.rule}: {frozen.message}"
        if until is None or until - now > MAX_FREEZE_WAIT:
            return PolicyGate(
                refusal=f"{why}; it lasts beyond the {MAX_FREEZE_WAIT.days} days a stage "
                "waits for a freeze"
            )
        return PolicyGate(frozen=why, until=until)
    principal = release_principal(release_id)
    for component, version in sorted(components.items()):
        req = DeploymentRequest(
            component=component,
            environment=environment,
            version=version,
            description=f"release {release_id}",
        )
        try:
            planned, found = await policies.planned_deployment(session, req)
            policies.enforce_deployment(found, principal, planned, now=now)
        except PermissionDeniedError as err:
            return PolicyGate(refusal=err.message)
    return PolicyGate()
