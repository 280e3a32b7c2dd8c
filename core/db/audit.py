"""The audit trail: one row per mutating action, with who did it, linked into a hash chain.

`record` adds an event to the session's transaction; just before that transaction commits, a
session hook takes the chain's lock (PostgreSQL: a transaction-scoped advisory lock; SQLite:
the database's write lock, taken by a no-op write before the head is read), reads the head, and
inserts the events with the next ids, linked and signed (core/audit_chain.py). A unique index
on `prev_hash` backs the lock: two events can never extend the same head.

The HMAC key comes from the key source bound to the session's engine (`use_keys`, called by
`core.db.engine.make_engine`), so every writer signs with this system's key without each caller
passing it around.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import delete, event, func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from core import audit_chain
from core.audit_chain import Checkpoint, EventContent, StoredEvent
from core.audit_key_store import AuditKeySource
from core.audit_keys import AuditKeyRing
from core.db.audit_tables import AuditCheckpointRow
from core.db.tables import AuditEventRow, utcnow
from core.errors import R2CError

# Any constant works: it only makes appends on PostgreSQL take turns (migrations use another).
_PG_CHAIN_LOCK = 724_201_512
PAGE = 1000

_key_sources: WeakKeyDictionary[Engine, AuditKeySource] = WeakKeyDictionary()


class AuditKeysNotBoundError(R2CError):
    """The store was opened without the audit key source: a wiring mistake of ours."""

    error_type = "AuditKeysNotBound"
    http_status = 500


def use_keys(engine: AsyncEngine, source: AuditKeySource) -> None:
    """Sign the audit events written through `engine` with the keys of `source`."""
    _key_sources[engine.sync_engine] = source


async def key_ring(session: AsyncSession, *, fresh: bool = False) -> AuditKeyRing:
    """The audit key ring of the store behind `session` (read off the event loop); `fresh`
    reads it now, as verification must (a rotation elsewhere may have just added a key)."""
    bind = session.bind
    source = _key_sources.get(bind.sync_engine) if isinstance(bind, AsyncEngine) else None
    if source is None:
        raise AuditKeysNotBoundError(
            "this store was opened without its audit keys",
            hint="open the store with core.db.engine.make_engine",
        )
    return await asyncio.to_thread(source.ring, fresh)


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_CHAIN_LOCK})
    else:
        # SQLite: a write (of nothing) takes the database's write lock now, so the head read
        # next cannot be overtaken by another writer before this transaction commits.
        session.execute(update(AuditEventRow).where(AuditEventRow.id == -1).values(id=-1))


def _content(row: AuditEventRow) -> EventContent:
    return EventContent(
        row.id, row.at, row.actor, row.action, row.target, row.detail or {}, row.request_id
    )


def stored(row: AuditEventRow) -> StoredEvent:
    """An event row as the chain's verifier reads it."""
    return StoredEvent(_content(row), row.prev_hash, row.hash, row.mac, row.key_id)


def _checkpoint(row: AuditCheckpointRow | None) -> Checkpoint | None:
    return Checkpoint(row.through_id, row.hash, row.mac, row.key_id) if row else None


def _latest_checkpoint(session: Session) -> Checkpoint | None:
    query = select(AuditCheckpointRow).order_by(AuditCheckpointRow.through_id.desc()).limit(1)
    return _checkpoint(session.execute(query).scalar_one_or_none())


async def latest_checkpoint(session: AsyncSession) -> Checkpoint | None:
    return await session.run_sync(_latest_checkpoint)


def _head(session: Session, ring: AuditKeyRing) -> tuple[int, str]:
    """The id the next event gets and the hash it links to (the lock is held)."""
    head = session.execute(
        select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(1)
    ).scalar_one_or_none()
    if head is None:
        cp = _latest_checkpoint(session)
        return (cp.through_id + 1, cp.hash) if cp else (1, audit_chain.GENESIS)
    if head.hash is None:
        _sign_unchained(session, ring)
    assert head.hash is not None
    return head.id + 1, head.hash


def _sign_unchained(session: Session, ring: AuditKeyRing) -> None:
    """Link and sign the events written before the chain existed (migration 0010 leaves them
    bare: it cannot read the key). Only while no event is signed yet: once the chain has
    begun, a bare event is tampering for `verify` to report, not something to bless."""
    signed = session.scalar(select(func.count()).where(AuditEventRow.hash.is_not(None)))
    key = ring.current
    prev = audit_chain.GENESIS
    for row in session.execute(select(AuditEventRow).order_by(AuditEventRow.id)).scalars():
        if signed:
            if row.hash is None:  # keep appending possible: link past the bare event
                row.hash = audit_chain.chain_hash(prev, _content(row))
            prev = row.hash
            continue
        sealed = audit_chain.seal(prev, _content(row), key.secret, key.id)
        row.prev_hash, row.hash = sealed.prev_hash, sealed.hash
        row.mac, row.key_id = sealed.mac, sealed.key_id
        prev = sealed.hash
    session.flush()


@dataclass
class _Pending:
    """Events recorded in a session's transaction, appended to the chain when it commits."""

    ring: AuditKeyRing
    events: list[AuditEventRow]


_PENDING = "r2c_audit_pending"


@event.listens_for(Session, "before_commit")
def _append_pending(session: Session) -> None:
    """Append the transaction's events to the chain, as the last thing before it commits: the
    chain's lock is held only for the commit itself, never across the caller's other work (a
    Temporal call between `record` and `commit` must not stall every other writer)."""
    pending: _Pending | None = session.info.pop(_PENDING, None)
    if pending is None:
        return
    _lock_chain(session)
    next_id, prev_hash = _head(session, pending.ring)
    key = pending.ring.current
    for row in pending.events:
        row.id = next_id
        sealed = audit_chain.seal(prev_hash, _content(row), key.secret, key.id)
        row.prev_hash, row.hash = sealed.prev_hash, sealed.hash
        row.mac, row.key_id = sealed.mac, sealed.key_id
        session.add(row)
        next_id, prev_hash = next_id + 1, sealed.hash
    session.flush()


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    """Record an event in the session's transaction: it joins the chain when the caller
    commits, with the change it describes (a rollback drops it with the change)."""
    ring = await key_ring(session)  # read here, off the event loop: the commit hook cannot
    # What is hashed must be what the store gives back: JSON-normalised (tuples become lists,
    # enums their values) before hashing.
    normal = json.loads(json.dumps(detail or {}))
    row = AuditEventRow(
        at=utcnow(),
        actor=actor,
        action=action,
        target=target,
        detail=normal,
        request_id=request_id,
    )
    pending: _Pending | None = session.sync_session.info.get(_PENDING)
    if pending is None:
        session.sync_session.info[_PENDING] = _Pending(ring, [row])
    else:
        pending.ring = ring
        pending.events.append(row)


async def recent(session: AsyncSession, limit: int = 100) -> list[AuditEventRow]:
    query = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


@dataclass(frozen=True)
class EventFilter:
    """Which events an export wants; every field optional."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None


async def find(
    session: AsyncSession,
    where: EventFilter,
    *,
    limit: int,
    before_id: int | None = None,
    after_id: int | None = None,
    oldest_first: bool = False,
) -> list[AuditEventRow]:
    """Events matching `where`, newest first (or oldest first), after a cursor."""
    query = select(AuditEventRow)
    if where.since is not None:
        query = query.where(AuditEventRow.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEventRow.at < where.until)
    if where.actor is not None:
        query = query.where(AuditEventRow.actor == where.actor)
    if where.action is not None:
        query = query.where(AuditEventRow.action == where.action)
    if where.target is not None:
        query = query.where(AuditEventRow.target == where.target)
    if before_id is not None:
        query = query.where(AuditEventRow.id < before_id)
    if after_id is not None:
        query = query.where(AuditEventRow.id > after_id)
    order = AuditEventRow.id.asc() if oldest_first else AuditEventRow.id.desc()
    return list((await session.execute(query.order_by(order).limit(limit))).scalars())


async def walk(session: AsyncSession, after_id: int = 0) -> AsyncIterator[AuditEventRow]:
    """Every event after `after_id` in id order, read a page at a time."""
    last = after_id
    while True:
        query = (
            select(AuditEventRow)
            .where(AuditEventRow.id > last)
            .order_by(AuditEventRow.id)
            .limit(PAGE)
        )
        rows = list((await session.execute(query)).scalars())
        for row in rows:
            yield row
        if len(rows) < PAGE:
            return
        last = rows[-1].id
        session.expunge_all()  # a long walk must not keep every row it has seen


async def verify(session: AsyncSession) -> audit_chain.Verdict:
    """Walk the whole chain from the latest checkpoint and name the first broken link."""
    ring = await key_ring(session, fresh=True)
    checkpoint = await latest_checkpoint(session)
    walker = audit_chain.ChainWalker(ring.secrets(), checkpoint)
    t = AuditEventRow.__table__.c
    columns = (t.id, t.at, t.actor, t.action, t.target, t.detail, t.request_id)
    seal_columns = (t.prev_hash, t.hash, t.mac, t.key_id)
    last = 0
    while True:
        # Plain rows, not ORM objects: a walk over a long chain is mostly this loop.
        query = select(*columns, *seal_columns).where(t.id > last).order_by(t.id).limit(PAGE)
        rows = (await session.execute(query)).all()
        for r in rows:
            content = EventContent(r[0], r[1], r[2], r[3], r[4], r[5] or {}, r[6])
            if not walker.feed(StoredEvent(content, r[7], r[8], r[9], r[10])):
                return walker.verdict()
        if len(rows) < PAGE:
            return walker.verdict()
        last = rows[-1][0]


@dataclass(frozen=True)
class Pruned:
    """What one pruning removed, and the checkpoint it left."""

    events: int
    checkpoint: Checkpoint | None


async def prune(session: AsyncSession, older_than: datetime) -> Pruned:
    """Remove the events written before `older_than` and leave a signed checkpoint of the last
    one removed, so the chain stays verifiable from there. Commits."""
    ring = await key_ring(session)
    pruned = await session.run_sync(_prune, ring, older_than)
    await session.commit()
    return pruned


def _prune(session: Session, ring: AuditKeyRing, older_than: datetime) -> Pruned:
    _lock_chain(session)
    _head(session, ring)  # bare events from before the chain are signed first
    last = session.execute(
        select(AuditEventRow)
        .where(AuditEventRow.at < older_than)
        .order_by(AuditEventRow.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if last is None or last.hash is None:
        return Pruned(0, _latest_checkpoint(session))
    # Pruning stops at the newest old event; anything before it goes, whatever its time.
    through_id, head_hash = last.id, last.hash
    count = int(session.scalar(select(func.count()).where(AuditEventRow.id <= through_id)) or 0)
    key = ring.current
    row = AuditCheckpointRow(
        through_id=through_id,
        hash=head_hash,
        mac=audit_chain.checkpoint_mac(key.secret, key.id, through_id, head_hash),
        key_id=key.id,
        pruned=count,
        at=utcnow(),
    )
    session.execute(delete(AuditEventRow).where(AuditEventRow.id <= through_id))
    session.add(row)
    session.flush()
    return Pruned(count, _checkpoint(row))
