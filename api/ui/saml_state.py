"""What SAML sign-in remembers between requests, in the sessions' backend (the store, or Redis
when REDIS_URL is set), so every API replica sees it:

- the pending sign-in: the AuthnRequest's id and where to go afterwards, named by the cookie
  `r2c_saml` of the browser that started it. Not in the session itself: the IdP's answer is a
  cross-site POST, which a SameSite=Lax session cookie does not come with. Used once.
- the assertion ids already accepted, until the assertion expires: one use per assertion,
  across replicas (claimed atomically: a unique row, or Redis SET NX).

Entries are named by SHA-256 of a text holding ':', which no session cookie can hold: no
cookie ever loads one of them as a session.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from fastapi import Request, Response
from sqlalchemy.exc import IntegrityError

from api.ui import sessions as ui_sessions
from core.db.tables import utcnow

COOKIE = "r2c_saml"
COOKIE_PATH = "/ui/saml"
PENDING_MINUTES = 15  # time to sign in at the IdP
MAX_REPLAY_WINDOW = timedelta(hours=24)


def _name(kind: str, value: str) -> str:
    return hashlib.sha256(f"saml-{kind}:{value}".encode()).hexdigest()


async def remember(request: Request, response: Response, request_id: str, next_path: str) -> None:
    """Keep a pending sign-in for the browser `response` goes to."""
    store = ui_sessions.of(request)
    value = secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + timedelta(minutes=PENDING_MINUTES)
    data = {"saml_request": request_id, "next": next_path}
    await store.backend.save(_name("pending", value), data, now, expires)
    secure = ui_sessions.secure(request, store.settings)
    response.set_cookie(
        COOKIE,
        value,
        max_age=PENDING_MINUTES * 60,
        path=COOKIE_PATH,
        httponly=True,
        # The IdP posts from its own site: over https the cookie must come along with that
        # POST (None). Plain http (development) cannot say None: Lax, so an IdP on the same
        # site (localhost) works.
        samesite="none" if secure else "lax",
        secure=secure,
    )


async def take(request: Request) -> dict[str, str] | None:
    """The browser's pending sign-in, forgotten as it is read (one answer per request)."""
    value = request.cookies.get(COOKIE)
    if not value or len(value) > 100:
        return None
    store = ui_sessions.of(request)
    name = _name("pending", value)
    found = await store.backend.load(name)
    if found is None:
        return None
    await store.backend.remove(name)
    data, _, _, expires = found
    if utcnow() >= expires:
        return None
    return {k: str(v) for k, v in data.items()}


def forget_cookie(request: Request, response: Response) -> None:
    secure = ui_sessions.secure(request, ui_sessions.of(request).settings)
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="none" if secure else "lax", secure=secure
    )


async def first_use(request: Request, idp: str, assertion_id: str, until: datetime) -> bool:
    """True the first time an assertion id is presented (until it expires), False after."""
    store = ui_sessions.of(request)
    now = utcnow()
    expires = min(max(until, now + timedelta(minutes=1)), now + MAX_REPLAY_WINDOW)
    name = _name("assertion", f"{idp}\n{assertion_id}")
    backend = store.backend
    if isinstance(backend, ui_sessions.RedisBackend):
        ttl = max(1, int((expires - now).total_seconds()))
        # The backend's own client and prefix: the same Redis, one atomic claim.
        claimed = await backend._redis.set(f"{backend._prefix}{name}", "1", ex=ttl, nx=True)
        return bool(claimed)
    try:
        await backend.save(name, {"saml_assertion": True}, now, expires)
    except IntegrityError:  # the row exists: this assertion was used already
        return False
    return True
