"""Store access for environment policies: the current policy of each environment and every
version ever written (a deleted policy's versions stay; a new one continues their numbering)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, func, select, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db.tables import Base, UTCDateTime, utcnow
from core.errors import ConflictError, NotFoundError
from core.models.policies import Policy, PolicySpec


class PolicyRow(Base):
    """The policy in force in one environment."""

    __tablename__ = "policies"

    environment: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PolicyVersionRow(Base):
    """One version of an environment's policy, as written; `spec` is None for a deletion."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    environment: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_policy_versions_env_version", "environment", "version", unique=True),
    )


def to_model(environment: str, version: int, spec: dict[str, Any], by: str, at: datetime) -> Policy:
    return Policy(
        **PolicySpec.model_validate(spec).model_dump(),
        environment=environment,
        version=version,
        updated_by=by,
        updated_at=at,
    )


def _missing(environment: str) -> NotFoundError:
    return NotFoundError(
        f"environment {environment!r} has no policy",
        hint=f"PUT /api/v1/policies/{environment} sets one; GET /api/v1/policies lists them",
    )


async def find(session: AsyncSession, environment: str) -> Policy | None:
    row = await session.get(PolicyRow, environment)
    if row is None:
        return None
    return to_model(row.environment, row.version, row.spec, row.updated_by, row.updated_at)


async def get(session: AsyncSession, environment: str) -> Policy:
    found = await find(session, environment)
    if found is None:
        raise _missing(environment)
    return found


async def list_all(session: AsyncSession) -> list[Policy]:
    rows = (await session.execute(select(PolicyRow).order_by(PolicyRow.environment))).scalars()
    return [to_model(r.environment, r.version, r.spec, r.updated_by, r.updated_at) for r in rows]


async def _next_version(session: AsyncSession, environment: str) -> int:
    newest = await session.scalar(
        select(func.max(PolicyVersionRow.version)).where(
            PolicyVersionRow.environment == environment
        )
    )
    return int(newest or 0) + 1


async def _add_version(
    session: AsyncSession, environment: str, spec: dict[str, Any] | None, by: str
) -> tuple[int, datetime]:
    version, now = await _next_version(session, environment), utcnow()
    session.add(
        PolicyVersionRow(
            environment=environment, version=version, spec=spec, created_by=by, created_at=now
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        # Two writers took the same version number: the later one must read the newer policy.
        await session.rollback()
        raise _changed_meanwhile(environment) from None
    return version, now


def _changed_meanwhile(environment: str) -> ConflictError:
    return ConflictError(
        f"the policy of {environment!r} was changed by someone else at the same moment",
        hint=f"GET /api/v1/policies/{environment}, then repeat the change",
    )


async def put(
    session: AsyncSession,
    environment: str,
    spec: PolicySpec,
    by: str,
    expected_version: int | None = None,
) -> Policy:
    """Write a new version of the environment's policy (not committed). With
    `expected_version`, the policy in force must still be that version when it is replaced
    (checked in the same statement): ConflictError otherwise."""
    data = spec.model_dump(mode="json")
    version, now = await _add_version(session, environment, data, by)
    values = {"version": version, "spec": data, "updated_by": by, "updated_at": now}
    if expected_version is not None:
        done = await session.execute(
            update(PolicyRow)
            .where(PolicyRow.environment == environment, PolicyRow.version == expected_version)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if getattr(done, "rowcount", 0) != 1:
            raise _changed_meanwhile(environment)
        return to_model(environment, version, data, by, now)
    row = await session.get(PolicyRow, environment)
    if row is None:
        session.add(PolicyRow(environment=environment, **values))
    else:
        row.version, row.spec, row.updated_by, row.updated_at = version, data, by, now
    await session.flush()
    return to_model(environment, version, data, by, now)


async def delete(
    session: AsyncSession, environment: str, by: str, expected_version: int | None = None
) -> int:
    """Remove the environment's policy (not committed); its versions stay, and the deletion is
    a version too. Answers that version. With `expected_version`, as in `put`."""
    row = await session.get(PolicyRow, environment)
    if row is None:
        raise _missing(environment)
    seen = row.version if expected_version is None else expected_version
    version, _ = await _add_version(session, environment, None, by)
    done = await session.execute(
        sql_delete(PolicyRow)
        .where(PolicyRow.environment == environment, PolicyRow.version == seen)
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) != 1:
        raise _changed_meanwhile(environment)
    session.expunge(row)
    return version


async def versions(
    session: AsyncSession, environment: str, limit: int, offset: int
) -> tuple[list[PolicyVersionRow], int]:
    """The environment's versions, newest first, and how many there are."""
    where = PolicyVersionRow.environment == environment
    total = int(
        await session.scalar(select(func.count()).select_from(PolicyVersionRow).where(where)) or 0
    )
    if total == 0:
        raise _missing(environment)
    query = (
        select(PolicyVersionRow)
        .where(where)
        .order_by(PolicyVersionRow.version.desc())
        .limit(limit)
        .offset(offset)
    )
    return list((await session.execute(query)).scalars()), total
