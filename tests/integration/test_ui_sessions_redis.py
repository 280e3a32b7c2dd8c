"""Dashboard sessions in Redis (REDIS_URL): kept there by the hash of their id with a TTL of
the idle timeout, not in the store, and gone at sign-out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import func, select

from core.db.ui_sessions_tables import UiSessionRow
from tests.integration.redis_fixture import RedisServer, redis_server_fixture  # noqa: F401
from tests.integration.system import System
from tests.integration.test_ui_sessions import browser, csrf_of, sign_in_with_key


async def test_sessions_live_in_redis_when_it_is_configured(
    make_system: Callable[..., Any], redis_server: RedisServer
) -> None:
    system: System = await make_system(
        worker=False, redis_url=redis_server.url, redis_prefix="uitest:"
    )
    app = system.http._transport.app  # type: ignore[attr-defined]
    raw = aioredis.from_url(redis_server.url)
    try:
        async with browser(system) as http:
            assert (await sign_in_with_key(http, system.admin_key)).status_code == 303
            assert "apikey:admin (admin)" in (await http.get("/ui/components")).text
            name = (
                "uitest:ui:session:"
                + hashlib.sha256(http.cookies["r2c_session"].encode()).hexdigest()
            )
            assert await raw.exists(name)
            assert 0 < await raw.ttl(name) <= 30 * 60  # the idle timeout, by default
            stored = await raw.get(name)
            assert system.admin_key.encode() not in stored
            assert http.cookies["r2c_session"].encode() not in stored
            async with app.state.sessions() as db:
                assert await db.scalar(select(func.count()).select_from(UiSessionRow)) == 0

            token = await csrf_of(http, "/ui/components")
            assert (await http.post("/ui/logout", data={"csrf_token": token})).status_code == 303
            assert not await raw.exists(name)
    finally:
        await raw.aclose()
        await app.state.ui_sessions.close()
