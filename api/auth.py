"""API-key authentication and role checks.

Verifying an argon2 hash costs tens of milliseconds, so a verified key is remembered (by its
SHA-256) and only its revocation is re-checked, cheaply, every few seconds. A key revoked
through this process stops working at once; one revoked elsewhere within `RECHECK_SECONDS`.
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

from core.db import apikeys
from core.errors import AuthenticationError, PermissionDeniedError
from core.models.apikeys import Principal, Role

RECHECK_SECONDS = 5.0

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


class KeyVerifier:
    """Turns a presented key into a `Principal`, or None when it matches no active key."""

    def __init__(self, sessions: async_sessionmaker[Any]) -> None:
        self._sessions = sessions
        self._cache: dict[str, tuple[Principal, float]] = {}
        # First verifications in flight: concurrent requests with a new key share one.
        self._pending: dict[str, asyncio.Task[Principal | None]] = {}

    async def verify(self, key: str) -> Principal | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None:
            principal, checked = cached
            if now - checked < RECHECK_SECONDS:
                return principal
            # Claim the re-check before awaiting, so a burst of requests runs one query.
            self._cache[digest] = (principal, now)
            async with self._sessions() as session:
                if await apikeys.is_active(session, principal.key_id):
                    self._cache[digest] = (principal, now)
                    return principal
            self._cache.pop(digest, None)
            return None
        task = self._pending.get(digest)
        if task is None:
            task = asyncio.create_task(self._first_verify(digest, key))
            self._pending[digest] = task
            task.add_done_callback(lambda _: self._pending.pop(digest, None))
        return await asyncio.shield(task)

    async def _first_verify(self, digest: str, key: str) -> Principal | None:
        async with self._sessions() as session:
            found = await apikeys.find_by_key(session, key)
        if found is None:
            return None
        row, key_hash = found
        if not await asyncio.to_thread(apikeys.verify_hash, key_hash, key):
            return None
        principal = apikeys.principal(row)
        self._cache[digest] = (principal, time.monotonic())
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a revoked key from the cache at once."""
        for digest, (principal, _) in list(self._cache.items()):
            if principal.key_id == key_id:
                del self._cache[digest]


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks that its role is at least `role`."""

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
        verifier: KeyVerifier = request.app.state.keys
        principal = await verifier.verify(key)
        if principal is None:
            raise AuthenticationError(
                "the API key is not valid or has been revoked",
                hint="create a new one with `r2c apikey create` or POST /api/v1/apikeys",
            )
        if not principal.role.allows(role):
            raise PermissionDeniedError(
                f"this action needs the {role.value} role; key {principal.name!r} "
                f"has {principal.role.value}",
                hint="ask an admin for a key with a higher role",
            )
        request.state.principal = principal
        return principal

    return dependency


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
