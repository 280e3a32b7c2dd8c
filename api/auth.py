"""API-key authentication and role checks.

Verifying an argon2 hash costs tens of milliseconds, so a verified key is remembered (by its
SHA-256) and only its revocation is re-checked, cheaply, every few seconds. A key revoked
through this process stops working at once, even one whose first verification was in flight
when it was revoked; one revoked elsewhere within `RECHECK_SECONDS`. Failed verifications are
limited per key prefix and per client address (429 with Retry-After).

A key's end (its expiry, or the end of its grace after a rotation) is remembered with it and
compared with the clock on every request, cached or not: an ended key is refused at once, with
a 401 that says why. Each key's last use is written at most once a minute per process.

A bearer value shaped like a JWT (three base64url parts; an API key has no dot) is an OIDC token
instead: `core.oidc` verifies it against R2C_OIDC_ISSUER and maps its groups to a role. Either
way the result is a `Principal`, checked against the route's role by the same code below (see
docs/oidc.md for how a browser session would be one more source of it).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker

from api.auth_audit import record_refusal
from api.ratelimit import FailureLimiter
from core.db import apikeys
from core.db.tables import utcnow
from core.errors import (
    AuthenticationError,
    DependencyUnavailableError,
    PermissionDeniedError,
    RateLimitedError,
)
from core.models.apikeys import Principal, Role
from core.oidc import IssuerUnavailable, OidcConfig, OidcVerifier, TokenRejected, looks_like_jwt

RECHECK_SECONDS = 5.0
# last_used_at is a write: once a minute per key and process is enough to answer "is it used?".
TOUCH_SECONDS = 60.0

log = logging.getLogger(__name__)

_bearer = HTTPBearer(
    auto_error=False, description="Authorization: Bearer <API key or OIDC access token>"
)
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


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
        self, sessions: async_sessionmaker[Any], per_key: int = 5, per_address: int = 20
    ) -> None:
        self._sessions = sessions
        self._cache: dict[str, _Verified] = {}
        self._touched: dict[str, float] = {}
        self._writes: set[asyncio.Task[None]] = set()
        # First verifications in flight: concurrent requests with a new key share one.
        self._pending: dict[str, asyncio.Task[_Verified | None]] = {}
        # Bumped by every revocation: a verification that saw it change re-checks its key.
        self._generation = 0
        self._per_key = FailureLimiter(per_key)
        self._per_address = FailureLimiter(per_address)

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
                    return None
                cached.standing = standing
            return self._usable(cached)
        self._refuse_if_limited(key, address)
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

    def _refuse_if_limited(self, key: str, address: str) -> None:
        prefix = apikeys.prefix_of(key)
        waits = [self._per_address.retry_after(address)]
        if prefix is not None:
            waits.append(self._per_key.retry_after(prefix))
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            raise RateLimitedError(
                "too many failed API key verifications from this client or for this key",
                retry_after=wait,
                hint=f"check the key and retry in {wait}s",
            )

    async def _first_verify(self, digest: str, key: str, address: str) -> _Verified | None:
        seen = self._generation
        async with self._sessions() as session:
            found = await apikeys.find_by_key(session, key)
        if found is None:
            return None
        row, key_hash = found
        if not await asyncio.to_thread(apikeys.verify_hash, key_hash, key):
            self._per_key.failed(row.prefix)
            self._per_address.failed(address)
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
        return verified

    async def _standing(self, key_id: str) -> apikeys.Standing | None:
        async with self._sessions() as session:
            return await apikeys.standing_of(session, key_id)

    def forget(self, key_id: str) -> None:
        """Drop a revoked or rotated key from the cache at once (and from verifications in
        flight): its next use reads its new standing."""
        self._generation += 1
        for digest, verified in list(self._cache.items()):
            if verified.principal.key_id == key_id:
                del self._cache[digest]


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks that its role is at least `role`;
    `required_role` on it lets the OpenAPI document and the tests find the role of a route."""

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header_key: Annotated[str | None, Security(_header)],
    ) -> Principal:
        key = bearer.credentials if bearer is not None else header_key
        if not key:
            raise AuthenticationError(
                "an API key is required",
                hint="send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; "
                "`r2c up` writes the admin key to R2C_HOME/admin.key",
            )
        token = looks_like_jwt(key)
        principal = await (
            _token_principal(request, key) if token else _key_principal(request, key)
        )
        if not principal.role.allows(role):
            await record_refusal(
                request,
                "auth.denied",
                reason="role",
                key=None if token else key,
                principal=principal,
                role=principal.role.value,
                required=role.value,
            )
            who = f"token of {principal.name!r}" if token else f"key {principal.name!r}"
            raise PermissionDeniedError(
                f"this action needs the {role.value} role; {who} has {principal.role.value}",
                hint="ask an admin for a key (or a group in R2C_OIDC_ROLE_MAP) with a higher role",
            )
        request.state.principal = principal
        return principal

    dependency.required_role = role  # type: ignore[attr-defined]
    return dependency


async def _key_principal(request: Request, key: str) -> Principal:
    verifier: KeyVerifier = request.app.state.keys
    address = request.client.host if request.client else "unknown"
    try:
        principal = await verifier.verify(key, address)
    except RateLimitedError:
        await record_refusal(request, "auth.failed", reason="rate_limited", key=key)
        raise
    except KeyEnded as ended:
        await record_refusal(request, "auth.failed", reason=f"key_{ended.reason}", key=key)
        if ended.reason == "rotated":
            raise AuthenticationError(
                "API key was rotated; use the new one",
                hint="the key that replaced it is listed by GET /api/v1/apikeys (replaced_by)",
            ) from None
        raise AuthenticationError(
            "API key expired",
            hint="ask an admin to rotate or re-create it (`r2c apikey create --expires-in`)",
        ) from None
    if principal is None:
        await record_refusal(request, "auth.failed", reason="invalid_or_revoked", key=key)
        raise AuthenticationError(
            "the API key is not valid or has been revoked",
            hint="create a new one with `r2c apikey create` or POST /api/v1/apikeys",
        )
    return principal


def _oidc(request: Request) -> OidcVerifier | None:
    """The app's token verifier, made on first use (None without R2C_OIDC_ISSUER); it keeps
    the issuer's keys for the life of the app."""
    state = request.app.state
    if not hasattr(state, "oidc"):
        config = OidcConfig.from_settings(state.settings)
        state.oidc = OidcVerifier(config) if config is not None else None
    verifier: OidcVerifier | None = state.oidc
    return verifier


async def _token_principal(request: Request, token: str) -> Principal:
    # The token itself is never passed on: not to the audit trail, not into an error.
    verifier = _oidc(request)
    if verifier is None:
        await record_refusal(request, "auth.failed", reason="token_not_accepted")
        raise AuthenticationError(
            "this API accepts no OIDC tokens (R2C_OIDC_ISSUER is not set)",
            hint="send an API key, or ask the operator to configure R2C_OIDC_ISSUER",
        )
    try:
        return await verifier.verify(token)
    except TokenRejected as err:
        await record_refusal(request, "auth.failed", reason=f"token_{err.reason}")
        raise AuthenticationError(err.message, hint=err.hint) from None
    except IssuerUnavailable as err:
        raise DependencyUnavailableError(
            f"the OIDC issuer's keys cannot be obtained to verify the token: {err}",
            hint="retry shortly; API keys keep working while the issuer is away",
        ) from None


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
