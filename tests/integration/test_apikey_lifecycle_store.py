"""The key lifecycle in the store: migration 0011 on an existing store (keys keep working and
never expire), down and up again; racing rotations; how often the last use is written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from core.db import apikeys
from core.db.engine import make_engine, sessions
from core.db.migrate import alembic_config, sync_url, upgrade
from core.settings import Settings
from tests.integration.system import System
from tests.support import wait_for

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)


async def test_keys_from_before_migration_0011_keep_working_without_expiry(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    key, prefix = apikeys.new_key()
    url = sync_url(settings)
    sync = create_engine(url)
    with sync.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")
        conn.execute(
            text(
                "INSERT INTO api_keys (id, name, role, prefix, key_hash, created_at) "
                "VALUES ('k1', 'old', 'operator', :prefix, :hash, :at)"
            ),
            {
                "prefix": prefix,
                "hash": apikeys.hash_key(key),
                "at": datetime(2026, 1, 1, tzinfo=UTC),
            },
        )
    sync.dispose()
    await asyncio.to_thread(upgrade, settings)

    engine = make_engine(settings)
    try:
        async with sessions(engine)() as session:
            found = await apikeys.find_by_key(session, key)
            assert found is not None and apikeys.verify_hash(found[1], key)
            row = found[0]
            assert (row.expires_at, row.last_used_at, row.replaced_by) == (None, None, None)
            assert apikeys.standing(row).ended(datetime.now(UTC)) is None
    finally:
        await engine.dispose()

    # Down to 0010 and up again: the key survives both ways.
    sync = create_engine(url)
    with sync.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
        assert conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 1
        command.upgrade(cfg, "head")
    sync.dispose()


async def test_of_two_racing_rotations_exactly_one_wins(system: System) -> None:
    created = await system.http.post(
        "/api/v1/apikeys", json={"name": "raced", "role": "viewer"}, headers=system.auth()
    )
    url = f"/api/v1/apikeys/{created.json()['id']}/rotate"
    answers = await asyncio.gather(
        *(system.http.post(url, json={"grace": "1m"}, headers=system.auth()) for _ in range(4))
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409, 409, 409], [r.text for r in answers]
    listed = await system.http.get("/api/v1/apikeys", headers=system.auth())
    assert [k["name"] for k in listed.json()].count("raced") == 2  # the old key and one new


async def test_the_last_use_is_written_once_a_minute_not_per_request(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await system.key("viewer", "busy")
    writes: list[str] = []
    real = apikeys.record_use

    async def counting(session: Any, key_id: str, at: datetime) -> None:
        writes.append(key_id)
        await real(session, key_id, at)

    monkeypatch.setattr(apikeys, "record_use", counting)
    for _ in range(20):
        resp = await system.http.get("/api/v1/components", headers=system.auth(key))
        assert resp.status_code == 200
    listed = await system.http.get("/api/v1/apikeys", headers=system.auth())
    busy = next(k for k in listed.json() if k["name"] == "busy")

    async def written() -> int:
        return writes.count(busy["id"])

    assert await wait_for(written, what="the first use written") == 1
    assert writes.count(busy["id"]) == 1  # 20 requests, one write
