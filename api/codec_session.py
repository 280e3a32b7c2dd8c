"""Codec sessions: how a person whose browser shows the Temporal Web UI gets payloads decoded.

The UI calls the codec server from the browser and cannot send our API key; with its "include
cross-origin credentials" setting it sends cookies. So a person signs in once at
`/codec/session` with an API key, and gets a cookie that the codec routes accept instead.

The cookie never holds the key: it holds the key's id and an expiry, signed with HMAC-SHA256
under a secret of this process (a restart signs everyone out). Each use looks the key up again,
so revoking the key ends its sessions at once. HttpOnly (no script reads it), SameSite=Strict
(no other site's page makes the browser send it; the UI on another port of the same host is
the same site) and Path=/codec (no other route ever receives it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Annotated

from fastapi import Request, Response, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import State

from api.auth import require
from core.db import apikeys
from core.db.tables import ApiKeyRow, utcnow
from core.errors import AuthenticationError
from core.models.apikeys import Principal, Role

log = logging.getLogger(__name__)

COOKIE_NAME = "r2c_codec_session"
COOKIE_PATH = "/codec"
SESSION_SECONDS = 8 * 3600
# A token this process made is about 120 characters: anything much longer is not one.
MAX_TOKEN_LENGTH = 512

_cookie = APIKeyCookie(
    name=COOKIE_NAME, auto_error=False, description="the codec session of POST /codec/session"
)
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")
_viewer_by_key = require(Role.VIEWER)


def _secret(state: State) -> bytes:
    """The signing secret of this app, made on first use: sessions live as long as the process."""
    secret: bytes | None = getattr(state, "codec_session_secret", None)
    if secret is None:
        secret = secrets.token_bytes(32)
        state.codec_session_secret = secret
    return secret


def _sign(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def issue(state: State, principal: Principal, now: float | None = None) -> tuple[str, int]:
    """A signed session token for `principal`'s key, and when it expires (Unix seconds)."""
    expires = int(now if now is not None else time.time()) + SESSION_SECONDS
    claims = json.dumps({"kid": principal.key_id, "exp": expires}, separators=(",", ":"))
    body = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    return f"{body}.{_sign(_secret(state), body)}", expires


def key_id_of(state: State, token: str, now: float | None = None) -> str | None:
    """The key id a token was issued for; None when it is not one of ours, altered, or expired."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        return None
    body, signature = token.split(".")
    # As bytes: a cookie may carry any character, and str comparison takes ASCII only.
    if not hmac.compare_digest(signature.encode(), _sign(_secret(state), body).encode()):
        return None
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if int(claims["exp"]) <= (now if now is not None else time.time()):
        return None
    return str(claims["kid"])


async def principal_of_session(request: Request, token: str) -> Principal:
    """The principal of a session cookie, its key looked up again (revoked: no session)."""
    key_id = key_id_of(request.app.state, token)
    row = None
    if key_id is not None:
        async with request.app.state.sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
    # A session ends with its key: revoked, expired, or rotated and past its grace.
    if row is None or row.revoked_at is not None or apikeys.standing(row).ended(utcnow()):
        raise AuthenticationError(
            "the codec session has expired, or its API key has been revoked, has expired or"
            " was rotated",
            hint="sign in again at /codec/session with a valid API key",
        )
    return apikeys.principal(row)


async def _viewer_by_key_or_session(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header_key: Annotated[str | None, Security(_header)],
    session_token: Annotated[str | None, Security(_cookie)],
) -> Principal:
    # A key sent with the request wins: it is checked (and rate-limited) like on every route.
    if bearer is not None or header_key or not session_token:
        return await _viewer_by_key(request, bearer, header_key)
    principal = await principal_of_session(request, session_token)
    request.state.principal = principal
    return principal


# Every role allows VIEWER, so a session of any valid key passes; `required_role` lets the
# OpenAPI document and the RBAC test see what the route needs, as for `require`.
_viewer_by_key_or_session.required_role = Role.VIEWER  # type: ignore[attr-defined]
ViewerByKeyOrSession = _viewer_by_key_or_session


def set_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
