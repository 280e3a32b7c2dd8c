"""Store access for components and their instances."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import false, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.tables import ComponentRow, InstanceRow, utcnow
from core.errors import ConflictError, NotFoundError
from core.models.components import Component, ComponentSpec, RuntimeSpec
from core.models.infrastructure import TargetState


def to_model(row: ComponentRow) -> Component:
    """The API model of a stored component."""
    return Component(
        id=row.id,
        name=row.name,
        description=row.description,
        owner=row.owner,
        labels=row.labels,
        runtime=RuntimeSpec.model_validate(row.runtime),
        config_schema=row.config_schema,
        slo=row.slo,
        depends_on=row.depends_on or [],
        created_at=row.created_at,
        updated_at=row.updated_at,
        revision=row.revision,
    )


def _slo(spec: ComponentSpec) -> dict[str, Any] | None:
    return None if spec.slo is None else spec.slo.model_dump(mode="json", exclude_none=True)


def _depends_on(spec: ComponentSpec) -> list[dict[str, Any]] | None:
    return [d.model_dump(mode="json") for d in spec.depends_on] or None


def _duplicate(name: str) -> ConflictError:
    return ConflictError(
        f"a component named {name!r} already exists",
        hint="choose another name, or PUT /api/v1/components/{id} to change the existing one",
    )


async def create(session: AsyncSession, spec: ComponentSpec) -> Component:
    """Add a component (not committed); a taken name is a ConflictError."""
    now = utcnow()
    row = ComponentRow(
        id=str(uuid.uuid4()),
        name=spec.name,
        description=spec.description,
        owner=spec.owner,
        labels=spec.labels,
        runtime=spec.runtime.model_dump(mode="json"),
        config_schema=spec.config_schema,
        slo=_slo(spec),
        depends_on=_depends_on(spec),
        created_at=now,
        updated_at=now,
        revision=1,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise _duplicate(spec.name) from None
    return to_model(row)


async def get_row(session: AsyncSession, ref: str) -> ComponentRow:
    """A component by id or by name, in one query (activities ask on every step); an id
    wins over a name that happens to look like one."""
    by_id = ComponentRow.id == ref
    query = select(ComponentRow).where(or_(by_id, ComponentRow.name == ref))
    row = (await session.execute(query.order_by(by_id.desc()).limit(1))).scalar_one_or_none()
    if row is None:
        raise NotFoundError(
            f"no component {ref!r}", hint="GET /api/v1/components lists the registered ones"
        )
    return row


async def lock(session: AsyncSession, ref: str) -> ComponentRow:
    """The component (by id or name), locked until the session's transaction ends.

    Deployment starts, retires, deletion and runtime changes of one component take this lock
    for their short check-and-act sections, so none of them acts on a check another has made
    stale. It is a no-op UPDATE rather than SELECT ... FOR UPDATE because that locks on both
    backends: on PostgreSQL the row, at a strength that instance rows referencing it do not
    wait for; on SQLite, whose driver opens a transaction at the first write, the database's
    write lock (other writers wait, readers do not).
    """
    row = await get_row(session, ref)
    done = await session.execute(
        update(ComponentRow)
        .where(ComponentRow.id == row.id)
        .values(revision=ComponentRow.revision)
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 1) == 0:  # deleted between the read and the lock
        raise NotFoundError(
            f"no component {ref!r}", hint="GET /api/v1/components lists the registered ones"
        )
    await session.refresh(row)
    return row


async def list_all(session: AsyncSession, *, owner: str | None = None) -> list[Component]:
    query = select(ComponentRow).order_by(ComponentRow.name)
    if owner is not None:
        query = query.where(ComponentRow.owner == owner)
    return [to_model(r) for r in (await session.execute(query)).scalars()]


async def replace(session: AsyncSession, ref: str, spec: ComponentSpec) -> Component:
    """Overwrite a component's definition (not committed) and bump its revision."""
    row = await get_row(session, ref)
    row.name = spec.name
    row.description = spec.description
    row.owner = spec.owner
    row.labels = spec.labels
    row.runtime = spec.runtime.model_dump(mode="json")
    row.config_schema = spec.config_schema
    row.slo = _slo(spec)
    row.depends_on = _depends_on(spec)
    row.updated_at = utcnow()
    row.revision += 1
    try:
        await session.flush()
    except IntegrityError:
        raise _duplicate(spec.name) from None
    return to_model(row)


async def delete(session: AsyncSession, ref: str) -> Component:
    """Remove a component and, by cascade, its instance rows (not committed)."""
    row = await get_row(session, ref)
    component = to_model(row)
    await session.delete(row)
    await session.flush()
    return component


async def instances(session: AsyncSession, component_id: str) -> list[InstanceRow]:
    """The component's instances as the worker last mirrored them."""
    query = (
        select(InstanceRow)
        .where(InstanceRow.component_id == component_id)
        .order_by(InstanceRow.environment, InstanceRow.id)
    )
    return list((await session.execute(query)).scalars())


async def mirror_instances(session: AsyncSession, state: TargetState) -> None:
    """Replace the instance rows of a target with what its provider reports (not committed);
    a component no longer registered has nothing to mirror."""
    row = (
        await session.execute(select(ComponentRow).where(ComponentRow.name == state.component))
    ).scalar_one_or_none()
    if row is None:
        return
    await session.execute(
        sql_delete(InstanceRow).where(
            InstanceRow.component_id == row.id, InstanceRow.environment == state.environment
        )
    )
    now = utcnow()
    for s in state.sets:
        for i in s.instances:
            session.add(
                InstanceRow(
                    id=i.instance_id,
                    component_id=row.id,
                    environment=state.environment,
                    version=i.version,
                    slot=i.slot,
                    url=i.url,
                    pid=i.pid,
                    state=i.state.value,
                    created_at=i.started_at,
                    updated_at=now,
                )
            )


# The key of the PostgreSQL advisory lock that serialises changes to the dependency graph.
_GRAPH_LOCK_KEY = "components-graph"


async def lock_graph(session: AsyncSession) -> None:
    """Serialise changes to the dependency graph until the session's transaction ends, so
    two writes that each leave the graph acyclic cannot close a cycle together. PostgreSQL:
    an advisory transaction lock. SQLite: a write that matches no row, which takes the
    database's write lock (its driver begins the transaction at the first write)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _GRAPH_LOCK_KEY}
        )
    else:
        await session.execute(
            update(ComponentRow)
            .where(false())
            .values(revision=ComponentRow.revision)
            .execution_options(synchronize_session=False)
        )


async def graph(session: AsyncSession) -> dict[str, list[str]]:
    """Every component's dependencies by name: `{component: [dependency, ...]}`."""
    rows = await session.execute(select(ComponentRow.name, ComponentRow.depends_on))
    return {name: [d["component"] for d in deps or ()] for name, deps in rows.all()}
