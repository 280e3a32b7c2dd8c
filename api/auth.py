"""API-key authentication and role checks.

Verifying an argon2 hash costs tens of milliseconds, so a verified key is remembered (by its
SHA-256) and only its revocation is re-checked, cheaply, every few seconds. A key revoked
through this process stops working at once, even one whose first verification was in flight
when it was revoked; one revoked elsewhere within `RECHECK_SECONDS`. Failed verifications are
limited per key prefix and per client address (429 with Retry-After).

A bearer value shaped like a JWT (three base64url parts; an API key has no dot) is an OIDC token
instead: `core.oidc` verifies it against R2C_OIDC_ISSUER and maps its groups to a role. Either
way the result is a `Principal`, checked against the route's role by the same code below (see
docs/oidc.md for how a browser session would be one more source of it).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import async_sessionmaker

from api.auth_audit import record_refusal
from api.ratelimit import FailureLimiter
from core.db import apikeys
from core.errors import (
    AuthenticationError,
    DependencyUnavailableError,
    PermissionDeniedError,
    RateLimitedError,
)
from core.models.apikeys import Principal, Role
from core.oidc import IssuerUnavailable, OidcConfig, OidcVerifier, TokenRejected, looks_like_jwt

RECHECK_SECONDS = 5.0

_bearer = HTTPBearer(
    auto_error=False, description="Authorization: Bearer <API key or OIDC access token>"
)
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


class KeyVerifier:
    """Turns a presented key into a `Principal`, or None when it matches no active key."""

    def __init__(
        self, sessions: async_sessionmaker[Any], per_key: int = 5, per_address: int = 20
    ) -> None:
        self._sessions = sessions
        self._cache: dict[str, tuple[Principal, float]] = {}
        # First verifications in flight: concurrent requests with a new key share one.
        self._pending: dict[str, asyncio.Task[Principal | None]] = {}
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
            principal, checked = cached
            if now - checked < RECHECK_SECONDS:
                return principal
            # Claim the re-check before awaiting, so a burst of requests runs one query.
            self._cache[digest] = (principal, now)
            if await self._is_active(principal.key_id):
                return principal
            self._cache.pop(digest, None)
            return None
        self._refuse_if_limited(key, address)
        task = self._pending.get(digest)
        if task is None:
            task = asyncio.create_task(self._first_verify(digest, key, address))
            self._pending[digest] = task
            task.add_done_callback(lambda _: self._pending.pop(digest, None))
        return await asyncio.shield(task)

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

    async def _first_verify(self, digest: str, key: str, address: str) -> Principal | None:
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
        while self._generation != seen:  # a key was revoked meanwhile: perhaps this one
            seen = self._generation
            if not await self._is_active(principal.key_id):
                return None
        self._cache[digest] = (principal, time.monotonic())
        return principal

    async def _is_active(self, key_id: str) -> bool:
        async with self._sessions() as session:
            return await apikeys.is_active(session, key_id)

    def forget(self, key_id: str) -> None:
        """Drop a revoked key from the cache at once (and from verifications in flight)."""
        self._generation += 1
        for digest, (principal, _) in list(self._cache.items()):
            if principal.key_id == key_id:
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
