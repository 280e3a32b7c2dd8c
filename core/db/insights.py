"""Store reads of the delivery insights and the deployment metrics. The statements are plain
SQLAlchemy Core, so the API (async session) and the metrics collector (its own sync engine)
run the same ones; every one is bounded by a window, a row limit or a GROUP BY over targets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.tables import DeploymentRow
from core.insights import DeploymentFact
from core.models.deployments import FINAL_STATES, DeploymentState

# The newest rows read for one answer or one scrape: beyond it the figures are of the
# newest MAX_ROWS deployments of the window.
MAX_ROWS = 20_000
_FINAL = [s.value for s in FINAL_STATES]
_T = DeploymentRow


def facts_query(
    since: datetime,
    *,
    component: str | None = None,
    environment: str | None = None,
    limit: int = MAX_ROWS,
) -> Select[*tuple[Any, ...]]:
    """The deployments created since `since`, newest first, at most `limit`."""
    query = select(
        _T.component, _T.environment, _T.strategy, _T.state, _T.created_at, _T.finished_at
    ).where(_T.created_at >= since)
    if component is not None:
        query = query.where(_T.component == component)
    if environment is not None:
        query = query.where(_T.environment == environment)
    return query.order_by(_T.created_at.desc()).limit(limit)


def to_facts(rows: Iterable[Sequence[Any]]) -> list[DeploymentFact]:
    """Rows of `facts_query` as facts."""
    return [
        DeploymentFact(
            component=r[0],
            environment=r[1],
            strategy=r[2],
            state=r[3],
            created_at=r[4],
            finished_at=r[5],
        )
        for r in rows
    ]


async def facts(
    session: AsyncSession,
    since: datetime,
    *,
    component: str | None = None,
    environment: str | None = None,
) -> list[DeploymentFact]:
    """The deployments created since `since` (newest MAX_ROWS), filtered."""
    query = facts_query(since, component=component, environment=environment)
    return to_facts((await session.execute(query)).all())


def outcomes_query() -> Select[*tuple[Any, ...]]:
    """Ended deployments of all time counted by component, environment, strategy and state."""
    return (
        select(_T.component, _T.environment, _T.strategy, _T.state, func.count())
        .where(_T.state.in_(_FINAL))
        .group_by(_T.component, _T.environment, _T.strategy, _T.state)
    )


def _reason_class() -> Any:
    # core.insights.reason_class in SQL, so the count is one GROUP BY over all time.
    return case(
        (_T.state == DeploymentState.ROLLED_BACK.value, "analysis"),
        (_T.state == DeploymentState.ABORTED.value, "abort"),
        (_T.reason.like("%progress deadline%"), "deadline"),
        else_="error",
    )


def rollbacks_query() -> Select[*tuple[Any, ...]]:
    """Deployments undone (rolled back, aborted, failed) by target and reason class."""
    undone = [
        DeploymentState.ROLLED_BACK.value,
        DeploymentState.ABORTED.value,
        DeploymentState.FAILED.value,
    ]
    klass = _reason_class().label("reason_class")
    return (
        select(_T.component, _T.environment, klass, func.count())
        .where(_T.state.in_(undone))
        .group_by(_T.component, _T.environment, klass)
    )


def unfinished_query(limit: int = MAX_ROWS) -> Select[*tuple[Any, ...]]:
    """Deployments not ended (newest `limit`): target, state, status and last change."""
    return (
        select(_T.component, _T.environment, _T.state, _T.status, _T.updated_at)
        .where(_T.state.not_in(_FINAL))
        .order_by(_T.created_at.desc())
        .limit(limit)
    )
