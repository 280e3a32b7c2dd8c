"""Store access for deployments and their revisions: the API creates and reads them, the
worker's record activity writes each new state and the revision of a success."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.tables import DeploymentRow, RevisionRow, utcnow
from core.errors import NotFoundError
from core.models.deployments import (
    FINAL_STATES,
    DeploymentInput,
    DeploymentState,
    DeploymentStatus,
)

_FINAL = [s.value for s in FINAL_STATES]


async def get(session: AsyncSession, deployment_id: str) -> DeploymentRow:
    """One deployment by id; NotFoundError when there is none."""
    row = await session.get(DeploymentRow, deployment_id)
    if row is None:
        raise NotFoundError(
            f"no deployment {deployment_id!r}", hint="GET /api/v1/deployments lists them"
        )
    return row


async def find(session: AsyncSession, deployment_id: str) -> DeploymentRow | None:
    """One deployment by id, or None."""
    return await session.get(DeploymentRow, deployment_id)


async def many(session: AsyncSession, deployment_ids: Sequence[str]) -> list[DeploymentRow]:
    """The deployments of these ids that exist."""
    if not deployment_ids:
        return []
    query = select(DeploymentRow).where(DeploymentRow.id.in_(list(deployment_ids)))
    return list((await session.execute(query)).scalars())


async def page(
    session: AsyncSession,
    *,
    component: str | None,
    environment: str | None,
    state: DeploymentState | None,
    limit: int,
    offset: int,
    readable: ColumnElement[bool] | None = None,
) -> tuple[list[DeploymentRow], int]:
    """Newest first, filtered (and, given `readable`, restricted to what a scoped caller may
    read, in SQL so the total and the paging stay right); with the number of matches over all
    pages."""
    query = select(DeploymentRow)
    if readable is not None:
        query = query.where(readable)
    if component:
        query = query.where(DeploymentRow.component == component)
    if environment:
        query = query.where(DeploymentRow.environment == environment)
    if state:
        query = query.where(DeploymentRow.state == state.value)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar()
    rows = await session.execute(
        query.order_by(DeploymentRow.created_at.desc()).limit(limit).offset(offset)
    )
    return list(rows.scalars()), int(total or 0)


async def unfinished(
    session: AsyncSession, component: str, environment: str | None = None
) -> Sequence[DeploymentRow]:
    """The component's deployments not recorded as ended (in one environment, or all); some
    may have stopped without recording it, so callers ask Temporal whether each still runs."""
    query = select(DeploymentRow).where(
        DeploymentRow.component == component, DeploymentRow.state.not_in(_FINAL)
    )
    if environment is not None:
        query = query.where(DeploymentRow.environment == environment)
    return list((await session.execute(query)).scalars())


async def revisions(session: AsyncSession, component: str, environment: str) -> list[RevisionRow]:
    """What ran after each successful deployment of a target, newest first."""
    query = (
        select(RevisionRow)
        .where(RevisionRow.component == component, RevisionRow.environment == environment)
        .order_by(RevisionRow.revision.desc())
    )
    return list((await session.execute(query)).scalars())


async def running_targets(
    session: AsyncSession, component: str | None, environment: str | None
) -> list[RevisionRow]:
    """The newest revision of every target (of `component`, in `environment`, when given)
    that a deployment has succeeded on: what each runs, oldest target name first."""
    newest = select(
        RevisionRow.component,
        RevisionRow.environment,
        func.max(RevisionRow.revision).label("revision"),
    ).group_by(RevisionRow.component, RevisionRow.environment)
    if component is not None:
        newest = newest.where(RevisionRow.component == component)
    if environment is not None:
        newest = newest.where(RevisionRow.environment == environment)
    last = newest.subquery()
    query = (
        select(RevisionRow)
        .join(
            last,
            (RevisionRow.component == last.c.component)
            & (RevisionRow.environment == last.c.environment)
            & (RevisionRow.revision == last.c.revision),
        )
        .order_by(RevisionRow.component, RevisionRow.environment)
    )
    return list((await session.execute(query)).scalars())


async def record(
    session: AsyncSession,
    inp: DeploymentInput,
    status: DeploymentStatus,
    workflow_id: str,
    run_id: str,
) -> None:
    """Upsert the deployment's row with its new state (a deployment started from the Temporal
    UI has none yet); on success, add the target's next revision, once. Not committed."""
    now = utcnow()
    row = await session.get(DeploymentRow, inp.deployment_id)
    if row is None:
        row = DeploymentRow(
            id=inp.deployment_id,
            component=inp.component,
            environment=inp.environment,
            version=inp.version,
            strategy=inp.strategy.type,
            workflow_id=workflow_id,
            initiator=inp.initiator,
            request=inp.model_dump(mode="json"),
            rollback_of=inp.rollback_of,
            created_at=now,
        )
        session.add(row)
    row.run_id = run_id
    row.state = status.state.value
    row.status = status.model_dump(mode="json")
    row.reason = status.reason
    row.updated_at = now
    if status.state in FINAL_STATES:
        row.finished_at = status.finished_at or now
    if status.state is DeploymentState.SUCCEEDED:
        # The env of the revision comes from the request the API stored: the workflow keeps
        # env values out of what it sends (a deployment started elsewhere has none).
        env = dict((row.request or {}).get("env") or {})
        await _add_revision(session, inp, env)


async def _add_revision(session: AsyncSession, inp: DeploymentInput, env: dict[str, str]) -> None:
    exists = await session.execute(
        select(RevisionRow.id).where(RevisionRow.deployment_id == inp.deployment_id)
    )
    if exists.first() is not None:
        return
    last = (
        await session.execute(
            select(func.max(RevisionRow.revision)).where(
                RevisionRow.component == inp.component,
                RevisionRow.environment == inp.environment,
            )
        )
    ).scalar()
    session.add(
        RevisionRow(
            component=inp.component,
            environment=inp.environment,
            revision=(last or 0) + 1,
            version=inp.version,
            env=env,
            replicas=inp.replicas_resolved,
            deployment_id=inp.deployment_id,
            created_at=utcnow(),
        )
    )
