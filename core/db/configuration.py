"""Store access for configuration entries: their versions, the revision counter, and the
effective set of a target (each key at its most specific scope), now or as of a revision.

Scopes are stored with "" for an absent component or environment (see configuration_tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.configuration_tables import (
    NO_NAME,
    ConfigEntryRow,
    ConfigRevisionRow,
    ConfigVersionRow,
)
from core.db.tables import ComponentRow, DeploymentRow, utcnow
from core.errors import NotFoundError, PreconditionFailedError
from core.models.configuration import ResolvedEntry, Scope, SecretRef, VersionAction


@dataclass(frozen=True)
class Current:
    """An entry at one scope with the version that is in force."""

    entry: ConfigEntryRow
    version: ConfigVersionRow

    @property
    def scope(self) -> Scope:
        return scope_of(self.entry)

    @property
    def deleted(self) -> bool:
        return self.version.action == VersionAction.DELETED


def scope_of(entry: ConfigEntryRow) -> Scope:
    return Scope(component=entry.component or None, environment=entry.environment or None)


def specificity(entry: ConfigEntryRow) -> int:
    """component+environment (3) > component (2) > environment (1) > global (0)."""
    return 2 * (entry.component != NO_NAME) + (entry.environment != NO_NAME)


async def take_revision(session: AsyncSession) -> int:
    """The next configuration revision (not committed). Every change calls this first: the
    counter's row is locked until the transaction ends, so changes take turns and whatever a
    change reads afterwards is not made stale by another."""
    await session.execute(
        update(ConfigRevisionRow)
        .where(ConfigRevisionRow.id == 1)
        .values(value=ConfigRevisionRow.value + 1)
        .execution_options(synchronize_session=False)
    )
    query = select(ConfigRevisionRow.value).where(ConfigRevisionRow.id == 1)
    return int((await session.execute(query)).scalar_one())


async def find_entry(session: AsyncSession, key: str, scope: Scope) -> ConfigEntryRow | None:
    query = select(ConfigEntryRow).where(
        ConfigEntryRow.key == key,
        ConfigEntryRow.component == (scope.component or NO_NAME),
        ConfigEntryRow.environment == (scope.environment or NO_NAME),
    )
    return (await session.execute(query)).scalar_one_or_none()


async def newest(session: AsyncSession, key: str, scope: Scope) -> Current | None:
    """The entry at exactly `scope` and its newest version (a deletion included)."""
    entry = await find_entry(session, key, scope)
    if entry is None:
        return None
    query = (
        select(ConfigVersionRow)
        .where(ConfigVersionRow.entry_id == entry.id)
        .order_by(ConfigVersionRow.version.desc())
        .limit(1)
    )
    version = (await session.execute(query)).scalar_one_or_none()
    return Current(entry, version) if version is not None else None


async def add_version(
    session: AsyncSession,
    key: str,
    scope: Scope,
    *,
    expected_version: int,
    revision: int,
    **fields: Any,
) -> Current:
    """Add version `expected_version + 1` of the entry (created if new), not committed.

    The unique (entry, version) constraint makes this atomic whatever the caller checked: a
    writer that lost a race gets PreconditionFailedError, and nothing of its change remains.
    """
    try:
        async with session.begin_nested():
            entry = await find_entry(session, key, scope)
            if entry is None:
                entry = ConfigEntryRow(
                    key=key,
                    component=scope.component or NO_NAME,
                    environment=scope.environment or NO_NAME,
                    created_at=utcnow(),
                )
                session.add(entry)
                await session.flush()
            version = ConfigVersionRow(
                entry_id=entry.id,
                version=expected_version + 1,
                revision=revision,
                at=utcnow(),
                **fields,
            )
            session.add(version)
            await session.flush()
    except IntegrityError:
        raise PreconditionFailedError(
            f"{key!r} at {scope.label()} was changed by someone else meanwhile",
            hint="GET it again and repeat the change with its new ETag in If-Match",
        ) from None
    return Current(entry, version)


async def version_of(session: AsyncSession, key: str, scope: Scope, number: int) -> Current:
    """Version `number` of the entry at exactly `scope`."""
    entry = await find_entry(session, key, scope)
    found = None
    if entry is not None:
        query = select(ConfigVersionRow).where(
            ConfigVersionRow.entry_id == entry.id, ConfigVersionRow.version == number
        )
        found = (await session.execute(query)).scalar_one_or_none()
    if entry is None or found is None:
        raise NotFoundError(
            f"{key!r} at {scope.label()} has no version {number}",
            hint=f"GET /api/v1/configuration/{key}/versions with the same scope lists them",
        )
    return Current(entry, found)


async def history(
    session: AsyncSession, key: str, scope: Scope, limit: int
) -> tuple[ConfigEntryRow, list[ConfigVersionRow]]:
    """The newest `limit` versions of the entry at exactly `scope`, plus the one before
    the oldest of them (a diff needs it), newest first."""
    entry = await find_entry(session, key, scope)
    if entry is None:
        raise NotFoundError(
            f"no entry {key!r} at {scope.label()}",
            hint="GET /api/v1/configuration?component=&environment= lists what applies",
        )
    query = (
        select(ConfigVersionRow)
        .where(ConfigVersionRow.entry_id == entry.id)
        .order_by(ConfigVersionRow.version.desc())
        .limit(limit + 1)
    )
    return entry, list((await session.execute(query)).scalars())


def _target_filter(component: str | None, environment: str | None) -> Any:
    """Entries that apply to a target: its own scopes and every less specific one."""
    return and_(
        ConfigEntryRow.component.in_({component or NO_NAME, NO_NAME}),
        ConfigEntryRow.environment.in_({environment or NO_NAME, NO_NAME}),
    )


async def resolved(
    session: AsyncSession,
    component: str | None,
    environment: str | None,
    at_revision: int | None = None,
    *,
    key: str | None = None,
) -> list[Current]:
    """Each key (or only `key`) that applies to the target, at its most specific scope that
    is not deleted, as of `at_revision` (the newest when None); sorted by key."""
    applies = _target_filter(component, environment)
    if key is not None:
        applies = and_(applies, ConfigEntryRow.key == key)
    in_force = select(
        ConfigVersionRow.entry_id, func.max(ConfigVersionRow.revision).label("revision")
    ).join(ConfigEntryRow, ConfigEntryRow.id == ConfigVersionRow.entry_id)
    in_force = in_force.where(applies)
    if at_revision is not None:
        in_force = in_force.where(ConfigVersionRow.revision <= at_revision)
    latest = in_force.group_by(ConfigVersionRow.entry_id).subquery()
    query = (
        select(ConfigEntryRow, ConfigVersionRow)
        .join(ConfigVersionRow, ConfigVersionRow.entry_id == ConfigEntryRow.id)
        .join(
            latest,
            and_(
                latest.c.entry_id == ConfigVersionRow.entry_id,
                latest.c.revision == ConfigVersionRow.revision,
            ),
        )
    )
    best: dict[str, Current] = {}
    for entry, version in (await session.execute(query)).all():
        found = Current(entry, version)
        if found.deleted:
            continue
        held = best.get(entry.key)
        if held is None or specificity(entry) > specificity(held.entry):
            best[entry.key] = found
    return [best[k] for k in sorted(best)]


def to_resolved(current: Current) -> ResolvedEntry:
    """An entry for code that hands configuration on: a secret as its Vault reference."""
    version = current.version
    secret = None
    if version.secret:
        secret = SecretRef(path=version.vault_path or "", vault_version=version.vault_version or 0)
    return ResolvedEntry(
        key=current.entry.key,
        value=None if version.secret else version.value,
        secret=secret,
        source=current.scope,
        version=version.version,
        revision=version.revision,
    )


async def effective(
    session: AsyncSession,
    component: str | None,
    environment: str | None,
    at_revision: int | None = None,
) -> list[ResolvedEntry]:
    """The effective configuration of a target as of a revision (the newest when None):
    each key at its most specific scope; secrets as references (path + Vault version)."""
    return [to_resolved(c) for c in await resolved(session, component, environment, at_revision)]


async def latest_revision(
    session: AsyncSession, component: str | None, environment: str | None
) -> int:
    """The newest revision of any change that affects the target; 0 if none does."""
    query = (
        select(func.max(ConfigVersionRow.revision))
        .join(ConfigEntryRow, ConfigEntryRow.id == ConfigVersionRow.entry_id)
        .where(_target_filter(component, environment))
    )
    return int((await session.execute(query)).scalar_one_or_none() or 0)


async def environments_of(session: AsyncSession, component: str) -> set[str]:
    """Environments where the component has configuration entries or deployments."""
    entries = select(ConfigEntryRow.environment).where(
        ConfigEntryRow.component == component, ConfigEntryRow.environment != NO_NAME
    )
    deployed = select(DeploymentRow.environment).where(DeploymentRow.component == component)
    found = set((await session.execute(entries.distinct())).scalars())
    return found | set((await session.execute(deployed.distinct())).scalars())


async def component_schema(session: AsyncSession, name: str) -> tuple[bool, dict[str, Any] | None]:
    """Whether a component of that name is registered, and its configuration schema."""
    query = select(ComponentRow.config_schema).where(ComponentRow.name == name)
    found = (await session.execute(query)).one_or_none()
    return (False, None) if found is None else (True, found[0])


async def component_schemas(session: AsyncSession) -> dict[str, dict[str, Any]]:
    """The configuration schema of every component that declares one, by name."""
    query = select(ComponentRow.name, ComponentRow.config_schema).where(
        ComponentRow.config_schema.is_not(None)
    )
    return {name: schema for name, schema in (await session.execute(query)).all() if schema}


async def live_keys(session: AsyncSession, scope: Scope) -> int:
    """How many keys are set (not deleted) at exactly `scope`."""
    newest_versions = (
        select(func.max(ConfigVersionRow.version).label("version"), ConfigVersionRow.entry_id)
        .join(ConfigEntryRow, ConfigEntryRow.id == ConfigVersionRow.entry_id)
        .where(
            ConfigEntryRow.component == (scope.component or NO_NAME),
            ConfigEntryRow.environment == (scope.environment or NO_NAME),
        )
        .group_by(ConfigVersionRow.entry_id)
        .subquery()
    )
    query = (
        select(func.count())
        .select_from(ConfigVersionRow)
        .join(
            newest_versions,
            and_(
                newest_versions.c.entry_id == ConfigVersionRow.entry_id,
                newest_versions.c.version == ConfigVersionRow.version,
            ),
        )
        .where(ConfigVersionRow.action == VersionAction.SET)
    )
    return int((await session.execute(query)).scalar_one())
