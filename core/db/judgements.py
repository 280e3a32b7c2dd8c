"""The judgement store: what each judge metric of an analysis decided, and the data it decided on.

A judgement is kept per (deployment, where, metric): a later measurement of the same analysis
metric covers the earlier one's window and replaces it (an upsert, so two workers saving the
same key at once cannot fail on the unique key; an older measurement never replaces a newer
one, as a retried activity could try). At most `keep` judgements are kept per (component,
environment); each save drops the oldest beyond it.

The recording (up to 10,000 samples a side per source) is kept as zlib-compressed JSON, at most
MAX_RECORDING_BYTES compressed; reading inflates at most MAX_RECORDING_JSON_BYTES, so a
corrupted or forged row cannot inflate without bound. Compressing the largest valid recording
takes most of a second: it is done in a thread, as is reading it back.

Not audited: judgements are observations of a deployment, like its measurements, made by the
worker for every analysis; the audit trail records what people and keys change (a policy, a
deployment they start), and a row per measurement would drown it without telling who did what.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.judgements_tables import JudgementRow
from core.judge.recording import NewJudgement, Recording, StoredJudgement
from core.judge.result import JudgeResult

# Per (component, environment): about a year of daily deployments with a few judge metrics.
MAX_JUDGEMENTS_PER_TARGET = 1000
# The largest valid recording (10,000 latencies a side and 20 series of 10,000 values a side)
# is about 8.5 MB of JSON and 3.8 MB compressed; these bounds leave room and no more.
MAX_RECORDING_JSON_BYTES = 16 * 1024 * 1024
MAX_RECORDING_BYTES = 8 * 1024 * 1024


class RecordingTooLargeError(ValueError):
    """A recording over the store's bound (compressed on save, inflated on read)."""


def compress(recording: Recording) -> bytes:
    """The recording as zlib-compressed JSON, refused beyond MAX_RECORDING_BYTES."""
    packed = zlib.compress(recording.model_dump_json().encode(), 6)
    if len(packed) > MAX_RECORDING_BYTES:
        raise RecordingTooLargeError(
            f"the recording takes {len(packed)} bytes compressed, over the store's"
            f" {MAX_RECORDING_BYTES}"
        )
    return packed


def decompress(packed: bytes) -> Recording:
    """The recording back, inflating at most MAX_RECORDING_JSON_BYTES."""
    inflater = zlib.decompressobj()
    raw = inflater.decompress(packed, MAX_RECORDING_JSON_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        raise RecordingTooLargeError(
            f"a stored recording inflates beyond {MAX_RECORDING_JSON_BYTES} bytes, or is cut"
        )
    return Recording.model_validate_json(raw)


def _row_values(judgement: NewJudgement, packed: bytes) -> dict[str, Any]:
    return {
        "deployment_id": judgement.deployment_id,
        "component": judgement.component,
        "environment": judgement.environment,
        "version": judgement.version,
        "where": judgement.where,
        "metric": judgement.metric,
        "at": judgement.at,
        "verdict": judgement.result.verdict,
        "score": judgement.result.score,
        "result": judgement.result.model_dump(mode="json"),
        "recording": packed,
    }


def _stored(row: JudgementRow) -> StoredJudgement:
    return StoredJudgement(
        id=row.id,
        deployment_id=row.deployment_id,
        component=row.component,
        environment=row.environment,
        version=row.version,
        metric=row.metric,
        where=row.where,
        at=row.at,
        result=JudgeResult.model_validate(row.result),
        recording=decompress(row.recording),
    )


async def _decoded(rows: Sequence[JudgementRow]) -> list[StoredJudgement]:
    # Inflating and validating up to 10,000 samples a side is CPU work: off the event loop.
    return await asyncio.to_thread(lambda: [_stored(r) for r in rows])


class SqlJudgementStore:
    """Judgements in the SQL store (SQLite or PostgreSQL)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        keep: int = MAX_JUDGEMENTS_PER_TARGET,
    ) -> None:
        if keep < 1:
            raise ValueError("keep at least one judgement per target")
        self._sessions = sessions
        self._keep = keep

    async def save(self, judgement: NewJudgement) -> None:
        """Keep the judgement, replacing an older one of the same (deployment, where, metric),
        and drop the oldest of its target beyond the bound."""
        packed = await asyncio.to_thread(compress, judgement.recording)
        values = _row_values(judgement, packed)
        async with self._sessions() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement = insert(JudgementRow).values(**values)
            replaced = {k: v for k, v in values.items() if k not in ("deployment_id", "where")}
            statement = statement.on_conflict_do_update(
                index_elements=["deployment_id", "where", "metric"],
                set_={k: statement.excluded[k] for k in replaced},
                # A retried, older measurement does not replace a newer one.
                where=JudgementRow.at <= statement.excluded.at,
            )
            await session.execute(statement)
            await session.execute(self._beyond_bound(judgement.component, judgement.environment))
            await session.commit()

    def _beyond_bound(self, component: str, environment: str) -> Any:
        oldest = (
            select(JudgementRow.id)
            .where(JudgementRow.component == component, JudgementRow.environment == environment)
            .order_by(JudgementRow.at.desc(), JudgementRow.id.desc())
            .offset(self._keep)
        )
        # PostgreSQL and SQLite both take a sub-select with OFFSET (and no LIMIT) inside IN.
        return delete(JudgementRow).where(JudgementRow.id.in_(oldest.scalar_subquery()))

    async def last_passed(
        self, component: str, environment: str, *, excluding_deployment: str
    ) -> StoredJudgement | None:
        """The newest passing judgement of the target made by another deployment: the pinned
        baseline of the next deployment."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(JudgementRow)
                    .where(
                        JudgementRow.component == component,
                        JudgementRow.environment == environment,
                        JudgementRow.verdict == "pass",
                        JudgementRow.deployment_id != excluding_deployment,
                    )
                    .order_by(JudgementRow.at.desc(), JudgementRow.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        return None if row is None else (await _decoded([row]))[0]

    async def of_deployment(
        self, deployment_id: str, *, metric: str | None = None, newest: int | None = None
    ) -> list[StoredJudgement]:
        """The deployment's judgements, oldest first; only those of analysis metric `metric`
        when given, and only the `newest` ones when given."""
        found = [
            j async for j in self.newest_of_deployment(deployment_id, metric=metric, newest=newest)
        ]
        found.reverse()
        return found

    async def newest_of_deployment(
        self, deployment_id: str, *, metric: str | None = None, newest: int | None = None
    ) -> AsyncIterator[StoredJudgement]:
        """The deployment's judgements, newest first, read and inflated one at a time: a reader
        that stops early (a replay's sample budget) never holds more than it judges, however
        large each recording is (up to 8 MB compressed)."""
        query = select(JudgementRow.id).where(JudgementRow.deployment_id == deployment_id)
        if metric is not None:
            query = query.where(JudgementRow.metric == metric)
        query = query.order_by(JudgementRow.at.desc(), JudgementRow.id.desc())
        if newest is not None:
            query = query.limit(newest)
        async with self._sessions() as session:
            ids = list((await session.execute(query)).scalars())
        for row_id in ids:
            async with self._sessions() as session:
                row = await session.get(JudgementRow, row_id)
            if row is not None:  # dropped by the bound meanwhile
                yield (await _decoded([row]))[0]

    async def count_of_deployment(self, deployment_id: str, *, metric: str | None = None) -> int:
        """How many judgements the deployment has (of `metric` when given)."""
        query = select(func.count()).where(JudgementRow.deployment_id == deployment_id)
        if metric is not None:
            query = query.where(JudgementRow.metric == metric)
        async with self._sessions() as session:
            return int((await session.execute(query)).scalar_one())

    async def metrics_of_deployment(self, deployment_id: str) -> list[str]:
        """The analysis metrics the deployment has judgements of (for a 404's message)."""
        query = (
            select(JudgementRow.metric)
            .where(JudgementRow.deployment_id == deployment_id)
            .distinct()
            .order_by(JudgementRow.metric)
        )
        async with self._sessions() as session:
            return list((await session.execute(query)).scalars())
