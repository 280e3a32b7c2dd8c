"""api/shared_auth.py against a real redis-server: an entry comes back as the principal it
was (an OIDC one too), a forged or moved entry is ignored, a store that raced a revocation
is refused, failure limits count across clients, and a Redis that is gone costs nothing (the
API starts and serves without it)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from api.ratelimit import FailureLimits
from api.shared_auth import SharedAuth, masked_url
from cli.processes import free_port
from core.db.apikeys import Standing
from core.key_ring import Key, KeyRing
from core.models.apikeys import Principal, Role
from core.models.scopes import Grant
from core.oidc import OidcPrincipal
from core.settings import Settings, SettingsError, load_settings
from tests.integration.redis_fixture import RedisServer, redis_server_fixture  # noqa: F401
from tests.integration.system import System

RING = KeyRing("audit-1", (Key("audit-1", datetime.now(UTC), secrets.token_bytes(32)),))
OTHER_RING = KeyRing("audit-1", (Key("audit-1", datetime.now(UTC), secrets.token_bytes(32)),))


def shared(url: str, prefix: str, ring: KeyRing = RING) -> SharedAuth:
    settings = Settings(redis_url=url, redis_prefix=prefix, home=Path("/nonexistent"))
    return SharedAuth(settings, ring=lambda: ring)


def digest() -> str:
    return hashlib.sha256(secrets.token_bytes(16)).hexdigest()


async def test_entries_round_trip_and_forgeries_are_ignored(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    one, other = shared(redis_server.url, prefix), shared(redis_server.url, prefix)
    forger = shared(redis_server.url, prefix, OTHER_RING)
    try:
        scoped = (Grant(role=Role.OPERATOR, components=("demo",), environments=("staging",)),)
        key = Principal(key_id="k1", name="ci", role=Role.OPERATOR, grants=scoped)
        token = OidcPrincipal(key_id="oidc:alice", name="alice", role=Role.ADMIN)
        ends = Standing(datetime.now(UTC) + timedelta(hours=1), "expired")
        d1, d2 = digest(), digest()
        gen = await one.generation()
        assert gen is not None
        await one.store_key(d1, key, ends, gen)
        await one.store_key(d2, token, Standing(None, None), gen)

        got = await other.load_key(d1)
        assert got is not None and got.principal == key and got.standing == ends
        assert type(got.principal) is Principal and abs(got.checked_at - time.time()) < 5
        assert got.principal.may(Role.OPERATOR, "demo", "staging", write=True)
        assert not got.principal.may(Role.OPERATOR, "demo", "production", write=True)
        got = await other.load_key(d2)
        assert got is not None and type(got.principal) is OidcPrincipal
        assert got.principal == token and got.principal.initiator == "oidc:alice"

        # Written by someone without the audit key, or moved under another key's digest.
        raw = redis.Redis.from_url(redis_server.url)
        d3 = digest()
        await forger.store_key(d3, Principal(key_id="x", name="x", role=Role.ADMIN), ends, gen)
        assert await other.load_key(d3) is None
        raw.set(f"{prefix}auth:key:{d3}", raw.get(f"{prefix}auth:key:{d1}") or b"")
        assert await other.load_key(d3) is None
        raw.set(f"{prefix}auth:key:{d3}", b"\x00not json")
        assert await other.load_key(d3) is None

        # A revocation after the generation was read: the late store is refused, and the
        # revoked key's entries are gone.
        late = await one.generation()
        assert late is not None
        one.forget("k1")
        await one.flush()
        await one.store_key(d1, key, ends, late)
        assert await other.load_key(d1) is None
        assert await other.load_key(d2) is not None
        raw.close()
    finally:
        for client in (one, other, forger):
            await client.stop()


async def test_failure_limits_count_across_clients(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    a, b = shared(redis_server.url, prefix), shared(redis_server.url, prefix)
    limits_a = FailureLimits(3, 100, a)
    limits_b = FailureLimits(3, 100, b)
    try:
        for limits in (limits_a, limits_b, limits_a):
            assert await limits.retry_after("abc", "10.0.0.1") is None
            await limits.failed("abc", "10.0.0.1")
        for limits in (limits_a, limits_b):
            wait = await limits.retry_after("abc", "10.0.0.1")
            assert wait is not None and 55 <= wait <= 60
        assert await limits_b.retry_after("other", "10.0.0.2") is None
        # Only the newest `limit` failures are kept: a flood does not grow the set.
        for _ in range(20):
            await limits_b.failed("abc", "10.0.0.1")
        raw = redis.Redis.from_url(redis_server.url)
        assert raw.zcard(f"{prefix}auth:fail:key:abc") == 3
        raw.close()
    finally:
        await a.stop()
        await b.stop()


async def test_a_redis_that_is_gone_costs_one_timeout_then_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = shared(f"redis://:hunter2@127.0.0.1:{free_port()}/0", "t:")
    limits = FailureLimits(3, 100, gone)
    try:
        started = time.monotonic()
        assert await gone.generation() is None
        assert await gone.load_key(digest()) is None
        for _ in range(5):
            await limits.failed("abc", "10.0.0.1")
        # The in-process counts still limit.
        assert await limits.retry_after("abc", "10.0.0.1") is not None
        assert time.monotonic() - started < 1.5
        assert not await gone.ping()
        assert "redis://:***@127.0.0.1" in caplog.text and "hunter2" not in caplog.text
    finally:
        await gone.stop()


def test_redis_url_is_validated_and_its_password_never_shown() -> None:
    assert (
        masked_url("rediss://app:hunter2@redis.example:6380/1")
        == "rediss://app:***@redis.example:6380/1"
    )
    assert masked_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    for bad in ("http://:hunter2@host/0", "redis://:hunter2@/0", "redis://:hunter2@h:x/0"):
        try:
            load_settings(redis_url=bad)
        except SettingsError as err:
            assert "REDIS_URL" in str(err) and "hunter2" not in str(err)
        else:
            raise AssertionError(f"{bad} accepted")
    assert load_settings(redis_url="").redis_url is None


async def test_the_api_starts_and_serves_while_redis_is_down(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(
        worker=False, redis_url=f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    )
    ready = await system.http.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["dependencies"]["redis"] == "unreachable"
    assert "Redis unreachable" in ready.json()["message"]
    key = await system.key("viewer")
    assert (
        await system.http.get("/api/v1/components", headers=system.auth(key))
    ).status_code == 200
    wrong = key[: key.rindex("_") + 1] + "z" * 43
    assert (
        await system.http.get("/api/v1/components", headers=system.auth(wrong))
    ).status_code == 401
