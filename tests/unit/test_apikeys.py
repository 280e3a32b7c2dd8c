"""API key format, hashing and roles."""

from __future__ import annotations

import pytest

from api import ratelimit
from core.db.apikeys import hash_key, new_key, prefix_of, verify_hash
from core.models.apikeys import Role


def test_new_keys_are_unique_and_carry_their_prefix() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    for key, prefix in keys:
        assert key.startswith(f"r2c_{prefix}_") and len(key) > 40
        assert prefix_of(key) == prefix


def test_malformed_keys_have_no_prefix() -> None:
    for bad in ("", "r2c", "r2c__x", "abc_123_x", "r2c_abc_"):
        assert prefix_of(bad) is None


def test_hash_verifies_only_the_same_key() -> None:
    key, _ = new_key()
    stored = hash_key(key)
    assert stored.startswith("$argon2id$") and key not in stored
    assert verify_hash(stored, key)
    assert not verify_hash(stored, key + "x")
    assert not verify_hash("not-a-hash", key)


def test_roles_include_lower_roles() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.ADMIN.allows(Role.VIEWER)
    assert Role.OPERATOR.allows(Role.VIEWER) and not Role.OPERATOR.allows(Role.ADMIN)
    assert not Role.VIEWER.allows(Role.OPERATOR)


def test_failure_limiter_allows_the_limit_then_says_when_to_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    limiter = ratelimit.FailureLimiter(limit=3, window=60)
    for _ in range(3):
        assert limiter.retry_after("prefix") is None
        limiter.failed("prefix")
    assert limiter.retry_after("prefix") == 60
    assert limiter.retry_after("other") is None
    now[0] += 30
    assert limiter.retry_after("prefix") == 30
    now[0] += 31
    assert limiter.retry_after("prefix") is None


def test_failure_limiter_forgets_the_oldest_keys_beyond_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_TRACKED", 3)
    limiter = ratelimit.FailureLimiter(limit=1)
    for key in ("a", "b", "c", "d"):
        limiter.failed(key)
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("d") == 60
