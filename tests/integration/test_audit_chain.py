"""The audit chain on the real store (SQLite, or PostgreSQL with R2C_TEST_DATABASE=postgresql):
rows edited, deleted and reordered straight in the database are each named at their id; events
from before the chain are signed by the first change after the upgrade; pruning leaves a
checkpoint the chain goes on from; concurrent writers never fork it (PostgreSQL, 50 writers)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core import audit_key_store
from core.audit_chain import Problem, Verdict, chain_hash
from core.db import audit
from core.db.engine import make_engine, sessions
from core.db.migrate import alembic_config, sync_url, upgrade
from core.settings import Settings
from tests.integration.openbao_fixture import OpenBaoServer

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

Store = tuple[AsyncEngine, async_sessionmaker[Any]]


@pytest.fixture
async def store(make_settings: Callable[..., Settings]) -> AsyncIterator[Store]:
    settings = make_settings()
    await asyncio.to_thread(upgrade, settings)
    engine = make_engine(settings)
    yield engine, sessions(engine)
    await engine.dispose()


async def write(store: Store, count: int, *, actor: str = "admin") -> None:
    for i in range(count):
        async with store[1]() as session:
            await audit.record(
                session, actor=actor, action="component.created", target=f"c{i}", detail={"i": i}
            )
            await session.commit()


async def sql(store: Store, statement: str, **params: Any) -> None:
    async with store[0].begin() as conn:
        await conn.execute(text(statement), params)


async def verdict(store: Store) -> Verdict:
    async with store[1]() as session:
        return await audit.verify(session)


async def broken_at(store: Store) -> tuple[int, Problem]:
    found = (await verdict(store)).broken
    assert found is not None, "the chain was expected to be broken"
    return found.id, found.problem


async def test_an_intact_chain_verifies(store: Store) -> None:
    await write(store, 5)
    result = await verdict(store)
    assert result.intact and result.checked == 5 and result.head_id == 5


async def test_an_edited_row_is_named(store: Store) -> None:
    await write(store, 6)
    await sql(store, "UPDATE audit_events SET target = 'someone-else' WHERE id = 4")
    assert await broken_at(store) == (4, Problem.CHANGED)


async def test_an_edited_row_with_its_hash_recomputed_fails_its_mac(store: Store) -> None:
    await write(store, 6)
    async with store[1]() as session:
        rows = [r async for r in audit.walk(session)]
    # The attacker edits event 3 and recomputes its hash (the formula is public), not the MAC.
    forged = dataclasses.replace(audit.stored(rows[2]).content, actor="mallory")
    new_hash = chain_hash(rows[2].prev_hash or "", forged)
    await sql(
        store, "UPDATE audit_events SET actor = 'mallory', hash = :h WHERE id = 3", h=new_hash
    )
    assert await broken_at(store) == (3, Problem.BAD_MAC)


async def test_a_deleted_row_is_named(store: Store) -> None:
    await write(store, 6)
    await sql(store, "DELETE FROM audit_events WHERE id = 3")
    assert await broken_at(store) == (3, Problem.MISSING)
    await sql(store, "DELETE FROM audit_events WHERE id IN (1, 2)")
    assert await broken_at(store) == (1, Problem.MISSING)


async def test_reordered_rows_are_named(store: Store) -> None:
    await write(store, 6)
    # Swap events 2 and 5 by their ids, as a reordering in the database would.
    await sql(store, "UPDATE audit_events SET id = 1000 WHERE id = 2")
    await sql(store, "UPDATE audit_events SET id = 2 WHERE id = 5")
    await sql(store, "UPDATE audit_events SET id = 5 WHERE id = 1000")
    found = (await verdict(store)).broken
    assert found is not None
    assert (found.id, found.problem) == (2, Problem.REORDERED)
    assert "written as event 5" in found.message


async def test_events_from_before_the_chain_are_signed_by_the_next_change(store: Store) -> None:
    # Rows as migration 0010 leaves them: written before the chain, with no link or MAC.
    for i in (1, 2, 3):
        await sql(
            store,
            "INSERT INTO audit_events (id, at, actor, action, target, detail) "
            "VALUES (:id, :at, 'old', 'component.created', :t, '{}')",
            id=i,
            at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i),
            t=f"old{i}",
        )
    assert await broken_at(store) == (1, Problem.UNSIGNED)
    await write(store, 2)
    result = await verdict(store)
    assert result.intact and result.checked == 5


async def test_pruning_leaves_a_checkpoint_the_chain_goes_on_from(store: Store) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    await _write_at(store, [old] * 5 + [datetime.now(UTC)] * 3)
    async with store[1]() as session:
        pruned = await audit.prune(session, datetime.now(UTC) - timedelta(days=30))
    assert pruned.events == 5
    assert pruned.checkpoint is not None and pruned.checkpoint.through_id == 5
    result = await verdict(store)
    assert result.intact and result.checked == 3
    assert result.checkpoint is not None and result.checkpoint.through_id == 5
    await write(store, 1)  # the chain goes on
    assert (await verdict(store)).intact
    # The first event after the checkpoint removed: a gap, named.
    await sql(store, "DELETE FROM audit_events WHERE id = 6")
    assert await broken_at(store) == (6, Problem.MISSING)


async def test_pruning_everything_keeps_the_chain_going(store: Store) -> None:
    await _write_at(store, [datetime.now(UTC) - timedelta(days=40)] * 3)
    async with store[1]() as session:
        assert (await audit.prune(session, datetime.now(UTC))).events == 3
    await write(store, 2)
    result = await verdict(store)
    assert result.intact and result.checked == 2 and result.head_id == 5


async def _write_at(store: Store, times: list[datetime]) -> None:
    """A fresh chain whose events were written at `times` (an old clock for old events)."""
    for at in times:
        with mock.patch("core.db.audit.utcnow", return_value=at):
            await write(store, 1)


async def test_a_forged_checkpoint_is_named(store: Store) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    await _write_at(store, [old] * 3 + [datetime.now(UTC)] * 3)
    async with store[1]() as session:
        await audit.prune(session, datetime.now(UTC) - timedelta(days=30))
    # Moving the checkpoint forward would hide event 4: its MAC binds the id too.
    await sql(store, "DELETE FROM audit_events WHERE id = 4")
    await sql(store, "UPDATE audit_checkpoints SET through_id = 4")
    assert await broken_at(store) == (4, Problem.CHECKPOINT)


async def concurrent_writers(store: Store, writers: int, each: int) -> float:
    """`writers` tasks appending `each` events at once; the events per second."""

    async def writer(n: int) -> None:
        await write(store, each, actor=f"writer-{n}")

    started = time.perf_counter()
    await asyncio.gather(*(writer(n) for n in range(writers)))
    return writers * each / (time.perf_counter() - started)


async def test_concurrent_writers_keep_one_chain(store: Store) -> None:
    rate = await concurrent_writers(store, 10, 5)
    result = await verdict(store)
    assert result.intact and result.checked == 50, result
    print(f"\n{rate:.0f} events/s with 10 writers on {store[0].dialect.name}")


async def test_fifty_writers_on_postgresql_keep_one_chain(
    postgres_server: str, tmp_path: Path
) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    settings = Settings(home=tmp_path / "home", postgres_url=url)
    await asyncio.to_thread(upgrade, settings)
    engine = make_engine(settings)
    pg: Store = (engine, sessions(engine))
    try:
        rate = await concurrent_writers(pg, 50, 20)
        started = time.perf_counter()
        result = await verdict(pg)
        took = time.perf_counter() - started
        assert result.intact and result.checked == 1000, result
        print(f"\n{rate:.0f} events/s with 50 writers on PostgreSQL; verify 1000: {took:.3f}s")
    finally:
        await engine.dispose()


async def test_keys_in_vault_sign_and_rotate_with_nothing_on_disk(
    make_settings: Callable[..., Settings], openbao: OpenBaoServer
) -> None:
    settings = make_settings(audit_key="vault", vault_url=openbao.url, vault_token=openbao.token)
    await asyncio.to_thread(upgrade, settings)
    engine = make_engine(settings)
    vault: Store = (engine, sessions(engine))
    try:
        await write(vault, 2)
        await asyncio.to_thread(audit_key_store.rotate, settings)
        # A fresh process (engine) reads the rotated ring: new events are signed with the
        # new key, old ones still verify with theirs.
        fresh = make_engine(settings)
        await write((fresh, sessions(fresh)), 2)
        await fresh.dispose()
        result = await verdict(vault)
        assert result.intact and result.checked == 4
        async with vault[1]() as session:
            key_ids = [r.key_id async for r in audit.walk(session)]
        assert key_ids[0] == key_ids[1] != key_ids[2] == key_ids[3]
    finally:
        await engine.dispose()
    assert not (settings.home / "audit-hmac.key").exists()


async def test_events_from_before_migration_0010_are_signed_after_the_upgrade(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    url = sync_url(settings)
    sync = create_engine(url)
    with sync.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0009")
        for i in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO audit_events (at, actor, action, target, detail) "
                    "VALUES (:at, 'old', 'component.created', :t, '{}')"
                ),
                {"at": datetime(2026, 1, 1, i, tzinfo=UTC), "t": f"old{i}"},
            )
    sync.dispose()
    await asyncio.to_thread(upgrade, settings)  # 0010: the columns, the events left bare
    engine = make_engine(settings)
    store: Store = (engine, sessions(engine))
    try:
        assert await broken_at(store) == (1, Problem.UNSIGNED)
        await write(store, 1)
        result = await verdict(store)
        assert result.intact and result.checked == 3
    finally:
        await engine.dispose()
