"""Store access for deployments and their revisions (the worker writes states; these read)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.tables import DeploymentRow, RevisionRow
from core.errors import NotFoundError
from core.models.deployments import FINAL_STATES, DeploymentState

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


async def page(
    session: AsyncSession,
    *,
    component: str | None,
    environment: str | None,
    state: DeploymentState | None,
    limit: int,
    offset: int,
) -> tuple[list[DeploymentRow], int]:
    """Newest first, filtered; with the number of matches over all pages."""
    query = select(DeploymentRow)
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


async def environments(session: AsyncSession, component: str) -> set[str]:
    """Every environment the component was ever deployed to."""
    query = select(DeploymentRow.environment).where(DeploymentRow.component == component)
    return set((await session.execute(query.distinct())).scalars())


async def revisions(session: AsyncSession, component: str, environment: str) -> list[RevisionRow]:
    """What ran after each successful deployment of a target, newest first."""
    query = (
        select(RevisionRow)
        .where(RevisionRow.component == component, RevisionRow.environment == environment)
        .order_by(RevisionRow.revision.desc())
    )
    return list((await session.execute(query)).scalars())
