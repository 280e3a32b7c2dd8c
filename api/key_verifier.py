"""Verifying API keys: a cache in front of argon2, revocation, expiry and failure limits.

Verifying an argon2 hash costs tens of milliseconds, so a verified key is remembered (by its
SHA-256) and only its revocation is re-checked, cheaply, every few seconds. A key revoked
through this process stops working at once, even one whose first verification was in flight
when it was revoked; one revoked elsewhere within `RECHECK_SECONDS`. Failed verifications are
limited per key prefix and per client address (429 with Retry-After).

A key's end (its expiry, or the end of its grace after a rotation) is remembered with it and
compared with the clock on every request, cached or not: an ended key is refused at once, with
a 401 that says why. Each key's last use is written at most once a minute per process.

With REDIS_URL (api/shared_auth.py) the replicas share all of it: a key verified by one is
found by the others without argon2 (then re-checked in the store as if verified when that
replica did), a revocation through one reaches every other within a second, and the failure
limits count across them. Without Redis, or while it is unreachable, each replica works alone
as described above.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker

from api.ratelimit import FailureLimits
from api.shared_auth import SharedAuth, SharedKey
from core.db import apikeys
from core.db.tables import utcnow
from core.errors import RateLimitedError
from core.models.apikeys import Principal

RECHECK_SECONDS = 5.0
# last_used_at is a write: once a minute per key and process is enough to answer "is it used?".
TOUCH_SECONDS = 60.0

log = logging.getLogger(__name__)


class KeyEnded(Exception):
    """A valid key past its expiry or its rotation grace."""

    def __init__(self, reason: Literal["expired", "rotated"]) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Verified:
    principal: Principal
    checked: float  # time.monotonic() of the last look at the store
    standing: apikeys.Standing


class KeyVerifier:
    """Turns a presented key into a `Principal`, or None when it matches no active key;
    KeyEnded when it matches one that has expired or was rotated and its grace is over."""

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        per_key: int = 5,
        per_address: int = 20,
        shared: SharedAuth | None = None,
    ) -> None:
        self._sessions = sessions
        self._shared = shared
        self._cache: dict[str, _Verified] = {}
        self._touched: dict[str, float] = {}
        self._writes: set[asyncio.Task[None]] = set()
        # First verifications in flight: concurrent requests with a new key share one.
        self._pending: dict[str, asyncio.Task[_Verified | None]] = {}
        # Bumped by every revocation: a verification that saw it change re-checks its key.
        self._generation = 0
        self._limits = FailureLimits(per_key, per_address, shared)

    async def verify(self, key: str, address: str = "unknown") -> Principal | None:
        """The principal of `key`; None if it is not an active key; RateLimitedError when the
        key's prefix or the address failed too often lately."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None:
            if now - cached.checked >= RECHECK_SECONDS:
                # Claim the re-check before awaiting, so a burst of requests runs one query;
                # it also learns of a rotation or revocation made elsewhere.
                cached.checked = now
                standing = await self._standing(cached.principal.key_id)
                if standing is None:
                    self._cache.pop(digest, None)
                    if self._shared is not None:  # revoked elsewhere (the CLI): tell the rest
                        self._shared.forget(cached.principal.key_id)
                    return None
                cached.standing = standing
            return self._usable(cached)
        await self._refuse_if_limited(key, address)
        task = self._pending.get(digest)
        if task is None:
            task = asyncio.create_task(self._first_verify(digest, key, address))
            self._pending[digest] = task
            task.add_done_callback(lambda _: self._pending.pop(digest, None))
        verified = await asyncio.shield(task)
        return None if verified is None else self._usable(verified)

    def _usable(self, verified: _Verified) -> Principal:
        """The principal if its key has not ended (a timestamp compare, on every request)."""
        reason = verified.standing.ended(utcnow())
        if reason is not None:
            raise KeyEnded(reason)
        self._touch(verified.principal.key_id)
        return verified.principal

    def _touch(self, key_id: str) -> None:
        now = time.monotonic()
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_SECONDS:
            return
        self._touched[key_id] = now
        # In the background: a request never waits for (or fails on) this bookkeeping write.
        task = asyncio.create_task(self._record_use(key_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def drain(self) -> None:
        """Wait for the last-use writes in flight (at shutdown, before the store closes: a
        write cut off then would leave its connection open)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _record_use(self, key_id: str) -> None:
        try:
            async with self._sessions() as session:
                await apikeys.record_use(session, key_id, utcnow())
                await session.commit()
        except SQLAlchemyError as err:
            log.warning("could not record the last use of API key %s: %s", key_id, err)

    async def _refuse_if_limited(self, key: str, address: str) -> None:
        wait = await self._limits.retry_after(apikeys.prefix_of(key), address)
        if wait is not None:
            raise RateLimitedError(
                "too many failed API key verifications from this client or for this key",
                retry_after=wait,
                hint=f"check the key and retry in {wait}s",
            )

    async def _first_verify(self, digest: str, key: str, address: str) -> _Verified | None:
        seen = self._generation
        generation: str | None = None
        if self._shared is not None:
            shared = await self._shared.load_key(digest)
            if shared is not None:
                return await self._adopt(digest, shared, seen)
            # Read before the store: a revocation after this makes the shared store a no-op.
            generation = await self._shared.generation()
        async with self._sessions() as session:
            found = await apikeys.find_by_key(session, key)
        if found is None:
            return None
        row, key_hash = found
        if not await asyncio.to_thread(apikeys.verify_hash, key_hash, key):
            await self._limits.failed(row.prefix, address)
            return None
        principal = apikeys.principal(row)
        standing: apikeys.Standing | None = apikeys.standing(row)
        while self._generation != seen:  # a key was revoked or rotated meanwhile: this one?
            seen = self._generation
            standing = await self._standing(principal.key_id)
            if standing is None:
                return None
        assert standing is not None
        verified = _Verified(principal, time.monotonic(), standing)
        self._cache[digest] = verified
        if self._shared is not None and generation is not None:
            await self._shared.store_key(digest, principal, standing, generation)
        return verified

    async def _adopt(self, digest: str, shared: SharedKey, seen: int) -> _Verified | None:
        """A key another replica verified: used as if this replica had checked the store
        when that one did, so it is re-checked on the same schedule (at once if that was
        `RECHECK_SECONDS` ago or more, or if a revocation arrives meanwhile)."""
        age = time.time() - shared.checked_at
        if 0 <= age < RECHECK_SECONDS and self._generation == seen:
            verified = _Verified(shared.principal, time.monotonic() - age, shared.standing)
        else:
            standing = None
            while standing is None or self._generation != seen:
                seen = self._generation
                standing = await self._standing(shared.principal.key_id)
                if standing is None:
                    return None
            verified = _Verified(shared.principal, time.monotonic(), standing)
        self._cache[digest] = verified
        return verified

    async def _standing(self, key_id: str) -> apikeys.Standing | None:
        async with self._sessions() as session:
            return await apikeys.standing_of(session, key_id)

    def forget(self, key_id: str) -> None:
        """Drop a revoked or rotated key from the cache at once (and from verifications in
        flight): its next use reads its new standing. With Redis, every replica does too."""
        self.forget_here(key_id)
        if self._shared is not None:
            self._shared.forget(key_id)

    def recheck_all(self) -> None:
        """Re-check every cached key in the store at its next use (revocations may have
        been missed: the Redis channel was lost for a while)."""
        self._generation += 1
        for verified in self._cache.values():
            verified.checked = -RECHECK_SECONDS

    def forget_here(self, key_id: str) -> None:
        """`forget` in this replica only (a revocation heard from another)."""
        self._generation += 1
        for digest, verified in list(self._cache.items()):
            if verified.principal.key_id == key_id:
                del self._cache[digest]
