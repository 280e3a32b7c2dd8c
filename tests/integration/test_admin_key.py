"""The admin key `r2c up` guarantees: made once and kept, or taken from R2C_ADMIN_API_KEY."""

from __future__ import annotations

import stat
from collections.abc import Callable

import pytest

from cli.bootstrap import ensure_admin_key
from core.db import apikeys
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.settings import Settings

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)


async def _active(settings: Settings, key: str) -> bool:
    engine = make_engine(settings)
    async with sessions(engine)() as session:
        found = await apikeys.find_by_key(session, key)
    await engine.dispose()
    return found is not None and apikeys.verify_hash(found[1], key)


async def test_made_once_kept_and_replaced_by_the_setting(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    upgrade(settings)
    path, created = await ensure_admin_key(settings)
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text().strip()
    assert await _active(settings, first)

    _, again = await ensure_admin_key(settings)
    assert not again and path.read_text().strip() == first

    chosen = "r2c_abcdef012345_" + "s" * 40
    pinned = make_settings(
        admin_api_key=chosen, home=settings.home, postgres_url=settings.postgres_url
    )
    _, replaced = await ensure_admin_key(pinned)
    assert replaced and path.read_text().strip() == chosen
    assert await _active(pinned, chosen) and not await _active(pinned, first)
