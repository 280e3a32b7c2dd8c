"""Pipelines in the store: definitions (the API), runs (the API creates, the workflow records),
verified combinations and holds (the workflow's activities; the API releases holds). Callers
commit, with their audit event where a person acted."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.pipelines_tables import (
    PipelineHoldRow,
    PipelineRow,
    PipelineRunRow,
    PipelineVerificationRow,
)
from core.db.tables import DeploymentRow
from core.errors import NotFoundError
from core.models.deployments import DeploymentState
from core.models.pipelines import FINAL_RUN_STATES, RunStatus

MAX_LISTED = 200


def combination_key(components: dict[str, str]) -> str:
    """The same key for the same set of versions, whatever the order given."""
    return hashlib.sha256(json.dumps(components, sort_keys=True).encode()).hexdigest()


async def get(session: AsyncSession, name: str) -> PipelineRow:
    row = await session.get(PipelineRow, name)
    if row is None:
        raise NotFoundError(f"no pipeline {name!r}", hint="GET /api/v1/pipelines lists them")
    return row


async def names(session: AsyncSession) -> list[PipelineRow]:
    query = select(PipelineRow).order_by(PipelineRow.name).limit(MAX_LISTED)
    return list((await session.execute(query)).scalars().all())


async def active_runs(session: AsyncSession, pipeline: str) -> list[PipelineRunRow]:
    final = [s.value for s in FINAL_RUN_STATES]
    query = select(PipelineRunRow).where(
        PipelineRunRow.pipeline == pipeline, PipelineRunRow.state.not_in(final)
    )
    return list((await session.execute(query)).scalars().all())


async def runs(session: AsyncSession, pipeline: str, limit: int = 20) -> list[PipelineRunRow]:
    query = (
        select(PipelineRunRow)
        .where(PipelineRunRow.pipeline == pipeline)
        .order_by(PipelineRunRow.created_at.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars().all())


async def run(session: AsyncSession, pipeline: str, run_id: str) -> PipelineRunRow:
    row = await session.get(PipelineRunRow, run_id)
    if row is None or row.pipeline != pipeline:
        raise NotFoundError(
            f"no run {run_id!r} of pipeline {pipeline!r}",
            hint=f"GET /api/v1/pipelines/{pipeline} lists its recent runs",
        )
    return row


async def record_run(session: AsyncSession, status: RunStatus) -> None:
    row = await session.get(PipelineRunRow, status.run_id)
    if row is None:  # started outside the API: nothing kept
        return
    row.state, row.reason = status.state.value, status.reason
    row.status = status.model_dump(mode="json")
    if status.state in FINAL_RUN_STATES:
        row.finished_at = status.finished_at


async def forget(session: AsyncSession, pipeline: str) -> None:
    """Everything kept about a deleted pipeline."""
    for table in (PipelineRunRow, PipelineVerificationRow, PipelineHoldRow):
        await session.execute(delete(table).where(table.pipeline == pipeline))


# ----------------------------------------------------------------------------- verified


async def verified_at(
    session: AsyncSession, pipeline: str, components: dict[str, str], environments: list[str]
) -> dict[str, datetime]:
    """When the combination was first verified in each of `environments` (those where it is)."""
    query = select(PipelineVerificationRow).where(
        PipelineVerificationRow.pipeline == pipeline,
        PipelineVerificationRow.combination == combination_key(components),
        PipelineVerificationRow.environment.in_(environments),
        PipelineVerificationRow.rollback.is_(False),
    )
    found: dict[str, datetime] = {}
    for row in (await session.execute(query)).scalars():
        if row.environment not in found or row.verified_at < found[row.environment]:
            found[row.environment] = row.verified_at
    return found


async def current(
    session: AsyncSession, pipeline: str, environment: str
) -> PipelineVerificationRow | None:
    """The environment's verified combination now: the newest verification."""
    query = (
        select(PipelineVerificationRow)
        .where(
            PipelineVerificationRow.pipeline == pipeline,
            PipelineVerificationRow.environment == environment,
        )
        .order_by(PipelineVerificationRow.verified_at.desc(), PipelineVerificationRow.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalars().first()


async def serving(session: AsyncSession, pipeline: str, environment: str) -> dict[str, str] | None:
    """The combination serving in the environment now: each component of its verified
    combination at the version of its newest successful deployment there (a person's rollback
    shows here, not in the verifications); None when nothing was verified there."""
    verified = await current(session, pipeline, environment)
    if verified is None:
        return None
    found = dict(verified.components)
    for component in sorted(found):
        query = (
            select(DeploymentRow.version)
            .where(
                DeploymentRow.component == component,
                DeploymentRow.environment == environment,
                DeploymentRow.state == DeploymentState.SUCCEEDED.value,
            )
            .order_by(DeploymentRow.created_at.desc())
            .limit(1)
        )
        version = (await session.execute(query)).scalars().first()
        if version is not None:
            found[component] = version
    return found


async def add_verified(
    session: AsyncSession,
    pipeline: str,
    environment: str,
    components: dict[str, str],
    run_id: str,
    at: datetime,
    *,
    rollback: bool = False,
) -> bool:
    """Record a verification; whether the combination was verified there before, and is not
    the environment's current one (an older combination pinned again)."""
    key = combination_key(components)
    latest = await current(session, pipeline, environment)
    query = select(PipelineVerificationRow.id).where(
        PipelineVerificationRow.pipeline == pipeline,
        PipelineVerificationRow.environment == environment,
        PipelineVerificationRow.combination == key,
    )
    seen_before = (await session.execute(query.limit(1))).first() is not None
    older = seen_before and latest is not None and latest.combination != key
    duplicate = (
        latest is not None and latest.combination == key and latest.run_id == run_id
    )  # a retried activity
    if not duplicate:
        session.add(
            PipelineVerificationRow(
                pipeline=pipeline,
                environment=environment,
                combination=key,
                components=dict(components),
                run_id=run_id,
                rollback=rollback,
                verified_at=at,
            )
        )
    return older


# ----------------------------------------------------------------------------- holds


async def holds(session: AsyncSession, pipeline: str) -> dict[str, PipelineHoldRow]:
    """The holds in force."""
    query = select(PipelineHoldRow).where(
        PipelineHoldRow.pipeline == pipeline, PipelineHoldRow.released_at.is_(None)
    )
    return {r.environment: r for r in (await session.execute(query)).scalars()}


async def hold_row(
    session: AsyncSession, pipeline: str, environment: str
) -> PipelineHoldRow | None:
    """The environment's hold, in force or released."""
    return await session.get(PipelineHoldRow, (pipeline, environment))


async def hold(session: AsyncSession, pipeline: str, environment: str) -> PipelineHoldRow | None:
    """The environment's hold in force, if any."""
    row = await hold_row(session, pipeline, environment)
    return row if row is not None and row.released_at is None else None


async def set_hold(
    session: AsyncSession, pipeline: str, environment: str, reason: str, set_by: str, at: datetime
) -> PipelineHoldRow:
    row = await hold_row(session, pipeline, environment)
    if row is None:
        row = PipelineHoldRow(
            pipeline=pipeline, environment=environment, reason=reason, set_by=set_by, set_at=at
        )
        session.add(row)
    elif row.released_at is not None:
        row.reason, row.set_by, row.set_at, row.released_at = reason, set_by, at, None
    await session.flush()
    return row


async def release_hold(
    session: AsyncSession, pipeline: str, environment: str, at: datetime
) -> PipelineHoldRow | None:
    """Release the hold in force (kept, released: what was held stays released)."""
    row = await hold(session, pipeline, environment)
    if row is not None:
        row.released_at = at
        await session.flush()
    return row
