"""Store access for component health: a round's findings become per-component states.

A state changes only when a round finds something else, so `since` is when the component
entered it. Rounds may land out of order (a scheduled check and one started by hand, an
activity retried late): a round older than the stored one changes nothing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.health_tables import ComponentHealthRow
from core.db.tables import ComponentRow
from core.models.health import (
    NOT_CHECKED,
    ComponentHealth,
    ComponentHealthStatus,
    Condition,
    HealthChange,
    HealthRecordRequest,
    HealthRecordResult,
    HealthState,
)

MAX_REASON = 1000
NOTHING_RUNS = "no running instances"


def judge(found: ComponentHealth) -> tuple[Condition, str]:
    """A probed component's state and the reason shown for it: healthy only when every
    instance answered; otherwise the failing instances and their errors."""
    counts = f"{found.healthy_instances}/{found.total_instances} instances healthy"
    if found.state is HealthState.HEALTHY:
        return Condition.HEALTHY, counts
    failing = "; ".join(
        f"{i.instance_id}: {i.error or 'unhealthy'}" for i in found.instances if not i.healthy
    )
    reason = f"{counts}; {failing}" if failing else counts
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 3] + "..."
    return Condition.UNHEALTHY, reason


async def record_round(session: AsyncSession, req: HealthRecordRequest) -> HealthRecordResult:
    """Write what `req.round` found into the states of the components it covered (in the
    caller's transaction); the result names the components whose state changed."""
    if req.environment:
        return HealthRecordResult(recorded=0, changes=[])
    found = {c.component: judge(c) for c in req.round.components}
    query = select(ComponentRow.id, ComponentRow.name).order_by(ComponentRow.name)
    if req.components:
        query = query.where(ComponentRow.name.in_(set(req.components) | found.keys()))
    components = (await session.execute(query)).all()
    # Row locks on PostgreSQL: two rounds recording at once take turns per component.
    rows = {
        row.component_id: row
        for row in (
            await session.execute(
                select(ComponentHealthRow)
                .where(ComponentHealthRow.component_id.in_([c.id for c in components]))
                .with_for_update()
            )
        ).scalars()
    }
    at = req.round.checked_at
    recorded = 0
    changes: list[HealthChange] = []
    for component_id, name in components:
        state, reason = found.get(name, (Condition.UNKNOWN, NOTHING_RUNS))
        row = rows.get(component_id)
        if row is None:
            session.add(
                ComponentHealthRow(
                    component_id=component_id,
                    state=state.value,
                    since=at,
                    checked_at=at,
                    reason=reason,
                )
            )
            recorded += 1
            changes.append(
                HealthChange(component=name, previous=None, state=state, since=at, reason=reason)
            )
            continue
        if row.checked_at > at:
            continue
        recorded += 1
        previous = Condition(row.state)
        row.checked_at, row.reason = at, reason
        if previous is not state:
            row.state, row.since = state.value, at
            changes.append(
                HealthChange(
                    component=name, previous=previous, state=state, since=at, reason=reason
                )
            )
    await session.flush()
    return HealthRecordResult(recorded=recorded, changes=changes)


def _status(row: ComponentHealthRow | None) -> ComponentHealthStatus:
    if row is None:
        return NOT_CHECKED
    return ComponentHealthStatus(
        state=Condition(row.state), since=row.since, checked_at=row.checked_at, reason=row.reason
    )


async def status(session: AsyncSession, component_id: str) -> ComponentHealthStatus:
    """The component's health; `unknown` (not checked yet) before its first round."""
    return _status(await session.get(ComponentHealthRow, component_id))


async def statuses(session: AsyncSession) -> dict[str, ComponentHealthStatus]:
    """Every recorded health, by component id (a component not in it was never checked)."""
    rows = (await session.execute(select(ComponentHealthRow))).scalars()
    return {row.component_id: _status(row) for row in rows}
