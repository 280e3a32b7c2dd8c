"""Server-side sessions of the dashboard: in the store, or in Redis when REDIS_URL is set.

The cookie `r2c_session` holds 256 random bits; the store keeps only their SHA-256, with the
session's data: its CSRF token, the principal it signed in as (None before sign-in), and
while an OIDC sign-in is under way its state and PKCE verifier. A session ends when unused
for R2C_UI_SESSION_IDLE_MINUTES, R2C_UI_SESSION_MAX_HOURS after it began, at sign-out, or
(signed in with an API key) as soon as that key is revoked, expires or is rotated past its
grace: the key's row is read again on every request, and the key itself is never kept.

A sign-in always starts a new session (new id, new CSRF token): an id planted in a browser
before sign-in is worth nothing after it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis
from fastapi import Request, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.ui.saml_principal import SamlPrincipal
from core.db import apikeys
from core.db import ui_sessions as store
from core.db.tables import ApiKeyRow, utcnow
from core.models.apikeys import Principal
from core.oidc import OidcPrincipal
from core.settings import Settings

COOKIE = "r2c_session"
COOKIE_PATH = "/ui"
# Before sign-in a session only carries the CSRF token of the sign-in form: short-lived.
ANONYMOUS_MINUTES = 15
# The idle clock is moved at most once a minute: one write per active minute, not per click.
TOUCH_EVERY = timedelta(seconds=60)
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass
class UiSession:
    """One session as the routes see it."""

    id_hash: str
    csrf: str
    created_at: datetime
    seen_at: datetime
    expires_at: datetime
    principal: Principal | None = None
    via: str | None = None  # "key", "oidc" or "saml"
    login: dict[str, str] = field(default_factory=dict)  # OIDC or SAML sign-in under way

    def data(self) -> dict[str, Any]:
        return {
            "csrf": self.csrf,
            "principal": self.principal.model_dump(mode="json") if self.principal else None,
            "kind": getattr(self.principal, "kind", None),
            "via": self.via,
            "login": self.login,
        }


class Backend(Protocol):
    async def load(
        self, id_hash: str
    ) -> tuple[dict[str, Any], datetime, datetime, datetime] | None:
        """(data, created_at, seen_at, expires_at)"""

    async def save(
        self, id_hash: str, data: dict[str, Any], now: datetime, expires_at: datetime
    ) -> None: ...

    async def touch(self, id_hash: str, now: datetime) -> None: ...

    async def remove(self, id_hash: str) -> None: ...


class StoreBackend:
    """Sessions in the store's ui_sessions table; expired rows go at each new session."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], idle: timedelta) -> None:
        self._sessions = sessions
        self._idle = idle

    async def load(
        self, id_hash: str
    ) -> tuple[dict[str, Any], datetime, datetime, datetime] | None:
        async with self._sessions() as session:
            row = await store.get(session, id_hash)
            if row is None:
                return None
            return dict(row.data), row.created_at, row.seen_at, row.expires_at

    async def save(
        self, id_hash: str, data: dict[str, Any], now: datetime, expires_at: datetime
    ) -> None:
        async with self._sessions() as session:
            await store.purge(session, now - self._idle, now)
            store.add(session, id_hash, data, now, expires_at)
            await session.commit()

    async def touch(self, id_hash: str, now: datetime) -> None:
        async with self._sessions() as session:
            await store.touch(session, id_hash, now)
            await session.commit()

    async def remove(self, id_hash: str) -> None:
        async with self._sessions() as session:
            await store.remove(session, id_hash)
            await session.commit()


class RedisBackend:
    """Sessions in Redis (REDIS_URL), shared by every API replica; Redis drops an entry once
    idle (its TTL) or past its absolute end, whichever comes first."""

    def __init__(self, settings: Settings, idle: timedelta) -> None:
        assert settings.redis_url is not None
        self._redis = aioredis.from_url(settings.redis_url, socket_timeout=2.0)
        self._prefix = f"{settings.redis_prefix}ui:session:"
        self._idle = idle

    def _ttl(self, now: datetime, expires_at: datetime) -> int:
        return max(1, int(min(self._idle, expires_at - now).total_seconds()))

    async def load(
        self, id_hash: str
    ) -> tuple[dict[str, Any], datetime, datetime, datetime] | None:
        raw = await self._redis.get(self._prefix + id_hash)
        if raw is None:
            return None
        entry = json.loads(raw)
        return (
            entry["data"],
            datetime.fromisoformat(entry["created_at"]),
            datetime.fromisoformat(entry["seen_at"]),
            datetime.fromisoformat(entry["expires_at"]),
        )

    async def save(
        self, id_hash: str, data: dict[str, Any], now: datetime, expires_at: datetime
    ) -> None:
        entry = {
            "data": data,
            "created_at": now.isoformat(),
            "seen_at": now.isoformat(),
            "expires_at": expires_at.isoformat(),
        }
        await self._redis.set(
            self._prefix + id_hash, json.dumps(entry), ex=self._ttl(now, expires_at)
        )

    async def touch(self, id_hash: str, now: datetime) -> None:
        found = await self.load(id_hash)
        if found is None:
            return
        data, created, _, expires = found
        entry = {
            "data": data,
            "created_at": created.isoformat(),
            "seen_at": now.isoformat(),
            "expires_at": expires.isoformat(),
        }
        await self._redis.set(
            self._prefix + id_hash, json.dumps(entry), ex=self._ttl(now, expires), xx=True
        )

    async def remove(self, id_hash: str) -> None:
        await self._redis.delete(self._prefix + id_hash)

    async def close(self) -> None:
        await self._redis.aclose()


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Begins, finds and ends sessions; one per app, made on first use."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.idle = timedelta(minutes=settings.ui_session_idle_minutes)
        self.lifetime = timedelta(hours=settings.ui_session_max_hours)
        self._db = sessions
        self.backend: Backend = (
            RedisBackend(settings, self.idle)
            if settings.redis_url
            else StoreBackend(sessions, self.idle)
        )

    async def current(self, request: Request) -> UiSession | None:
        """The request's session, if its cookie names one still alive."""
        value = request.cookies.get(COOKIE)
        if not value or len(value) != 43 or not set(value) <= _ID_CHARS:
            return None
        id_hash = digest(value)
        found = await self.backend.load(id_hash)
        if found is None:
            return None
        data, created, seen, expires = found
        now = utcnow()
        if now >= expires or now - seen >= self.idle:
            await self.backend.remove(id_hash)
            return None
        principal = await self._principal(data)
        if data.get("principal") is not None and principal is None:
            await self.backend.remove(id_hash)  # its key ended: so does the session
            return None
        if now - seen >= TOUCH_EVERY:
            await self.backend.touch(id_hash, now)
            seen = now
        return UiSession(
            id_hash=id_hash,
            csrf=str(data["csrf"]),
            created_at=created,
            seen_at=seen,
            expires_at=expires,
            principal=principal,
            via=data.get("via"),
            login=dict(data.get("login") or {}),
        )

    async def _principal(self, data: dict[str, Any]) -> Principal | None:
        raw = data.get("principal")
        if raw is None:
            return None
        try:
            if data.get("via") == "key":
                # The key's current role and scopes, and nothing if it ended.
                async with self._db() as session:
                    row = await session.get(ApiKeyRow, str(raw["key_id"]))
                if row is None or row.revoked_at is not None:
                    return None
                if apikeys.standing(row).ended(utcnow()):
                    return None
                return apikeys.principal(row)
            if data.get("kind") == "oidc":
                return OidcPrincipal.model_validate(raw)
            if data.get("kind") == "saml":
                return SamlPrincipal.model_validate(raw)
            return Principal.model_validate(raw)
        except (ValidationError, KeyError):
            return None

    async def begin(
        self,
        *,
        principal: Principal | None = None,
        via: str | None = None,
        login: dict[str, str] | None = None,
        replaces: UiSession | None = None,
    ) -> tuple[UiSession, str]:
        """A new session (replacing `replaces`) and the cookie value naming it (`attach`)."""
        if replaces is not None:
            await self.backend.remove(replaces.id_hash)
        value = secrets.token_urlsafe(32)  # 256 bits, 43 characters
        now = utcnow()
        life = self.lifetime if principal is not None else timedelta(minutes=ANONYMOUS_MINUTES)
        made = UiSession(
            id_hash=digest(value),
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            seen_at=now,
            expires_at=now + life,
            principal=principal,
            via=via,
            login=login or {},
        )
        await self.backend.save(made.id_hash, made.data(), now, made.expires_at)
        return made, value

    def attach(self, response: Response, request: Request, made: UiSession, value: str) -> None:
        """Set the cookie of a session `begin` made."""
        response.set_cookie(
            COOKIE,
            value,
            max_age=int((made.expires_at - made.created_at).total_seconds()),
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=secure(request, self.settings),
        )

    async def end(self, response: Response, request: Request, ended: UiSession | None) -> None:
        if ended is not None:
            await self.backend.remove(ended.id_hash)
        response.delete_cookie(
            COOKIE,
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=secure(request, self.settings),
        )

    async def close(self) -> None:
        if isinstance(self.backend, RedisBackend):
            await self.backend.close()


def secure(request: Request, settings: Settings) -> bool:
    """Secure cookies whenever the browser talks https: to this server, or to the proxy in
    front of it (R2C_UI_PUBLIC_URL)."""
    public = settings.ui_public_url
    return request.url.scheme == "https" or bool(public and public.startswith("https://"))


def of(request: Request) -> Sessions:
    state = request.app.state
    found: Sessions | None = getattr(state, "ui_sessions", None)
    if found is None:
        found = Sessions(state.settings, state.sessions)
        state.ui_sessions = found
    return found
