"""Sign-in and sign-out of the dashboard.

- OIDC authorization code with PKCE (S256) against R2C_OIDC_ISSUER: the browser goes to the
  issuer's authorization endpoint with a random `state` and a code challenge; the callback
  checks the state against the session, trades the code and its verifier for tokens, and
  verifies the access token exactly as a bearer token of the API is verified (issuer,
  audience, signature, expiry, groups -> role and scopes). The principal is the same.
- An API key typed into a form (for local use): verified once, as on every API route (rate
  limits included); the session keeps the key's id, never the key.

Both start a new session and are audited (`ui.signed_in`, `ui.signed_out`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from api.auth import _oidc
from api.auth_audit import record_refusal
from api.key_verifier import KeyEnded
from api.services import audit
from api.ui import csrf
from api.ui import sessions as ui_sessions
from api.ui.render import page
from core.errors import (
    AuthenticationError,
    BadRequestError,
    DependencyUnavailableError,
    RateLimitedError,
)
from core.models.apikeys import Principal
from core.oidc import IssuerUnavailable, TokenRejected
from core.settings import Settings

router = APIRouter()
HOME = "/ui/deployments"
TIMEOUT = httpx.Timeout(5.0)
MAX_ANSWER_BYTES = 256 * 1024


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: only a path of this dashboard (no open redirect)."""
    if (
        value
        and value.startswith("/ui/")
        and "//" not in value
        and "\\" not in value
        and len(value) <= 500
        and value.isprintable()
    ):
        return value
    return HOME


def oidc_enabled(settings: Settings) -> bool:
    return settings.oidc_issuer is not None


@router.get("/login")
async def login_page(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    """The sign-in page: OIDC (when configured) and an API key form."""
    store = ui_sessions.of(request)
    session = await store.current(request)
    if session is not None and session.principal is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    made: tuple[ui_sessions.UiSession, str] | None = None
    if session is None:
        made = await store.begin()
        session = made[0]
    response = page(
        request,
        "login.html",
        session=None,
        next=safe_next(next),
        oidc=oidc_enabled(request.app.state.settings),
        saml=request.app.state.settings.ui_saml_idp_metadata is not None,  # api/ui/saml.py
        csrf_token=session.csrf,
    )
    if made is not None:
        store.attach(response, request, *made)
    return response


@router.post("/login/key")
async def login_with_key(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    store = ui_sessions.of(request)
    session = await store.current(request)
    await csrf.check(request, session)
    key = api_key.strip()
    address = request.client.host if request.client else "unknown"
    principal = None
    if key:
        try:
            principal = await request.app.state.keys.verify(key, address)
        except RateLimitedError:
            await record_refusal(request, "auth.failed", reason="rate_limited", key=key)
            raise
        except KeyEnded:  # expired, or rotated past its grace: not signed in
            principal = None
    if principal is None:
        if key:
            await record_refusal(request, "auth.failed", reason="ui_invalid_key", key=key)
        raise AuthenticationError(
            "that API key is not valid, or has been revoked, rotated or has expired",
            hint="paste a current key (`r2c up` writes the admin key to R2C_HOME/admin.key)",
        )
    return await _signed_in(request, principal, "key", safe_next(next), session)


async def _signed_in(
    request: Request, principal: Principal, via: str, to: str, old: ui_sessions.UiSession | None
) -> Response:
    response = RedirectResponse(to, status_code=303)
    store = ui_sessions.of(request)
    store.attach(response, request, *await store.begin(principal=principal, via=via, replaces=old))
    async with request.app.state.sessions() as db:
        await audit.commit(db, principal, "ui.signed_in", "ui", via=via, role=principal.role.value)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    store = ui_sessions.of(request)
    session = await store.current(request)
    await csrf.check(request, session)
    response = RedirectResponse("/ui/login", status_code=303)
    await store.end(response, request, session)
    if session is not None and session.principal is not None:
        async with request.app.state.sessions() as db:
            await audit.commit(db, session.principal, "ui.signed_out", "ui", via=session.via)
    return response


def _redirect_uri(request: Request) -> str:
    public = request.app.state.settings.ui_public_url
    base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    # The sub-application's base URL ends with /ui already when mounted there.
    return base + ("/callback" if base.endswith("/ui") else "/ui/callback")


async def _discovery(request: Request) -> dict[str, Any]:
    state = request.app.state
    cached: dict[str, Any] | None = getattr(state, "ui_oidc_discovery", None)
    if cached is not None:
        return cached
    issuer = state.settings.oidc_issuer
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    document = await _json(url, None)
    for name in ("authorization_endpoint", "token_endpoint"):
        value = document.get(name)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise DependencyUnavailableError(
                f"the OIDC issuer's discovery document has no {name}",
                hint="configure an issuer that supports the authorization code flow",
            )
    state.ui_oidc_discovery = document
    return document


async def _json(url: str, form: dict[str, str] | None) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
            resp = (
                await http.post(url, data=form, headers={"Accept": "application/json"})
                if form is not None
                else await http.get(url, headers={"Accept": "application/json"})
            )
        if len(resp.content) > MAX_ANSWER_BYTES:
            raise ValueError("too large")
        body = resp.json()
    except (httpx.HTTPError, ValueError) as err:
        raise DependencyUnavailableError(
            f"the OIDC issuer cannot be reached ({type(err).__name__})",
            hint="retry shortly, or sign in with an API key",
        ) from None
    if not isinstance(body, dict):
        raise DependencyUnavailableError("the OIDC issuer answered no JSON object")
    if resp.status_code != 200:
        refusal = str(body.get("error", resp.status_code))[:80]
        raise AuthenticationError(
            f"the OIDC issuer refused the sign-in ({refusal})",
            hint="sign in again",
        )
    return body


def _client_id(settings: Settings) -> str:
    return str(settings.ui_oidc_client_id or settings.oidc_audience)


@router.get("/login/oidc")
async def login_with_oidc(
    request: Request, next: Annotated[str | None, Query()] = None
) -> Response:
    """Off to the issuer, with state and a PKCE challenge kept in a new session."""
    settings: Settings = request.app.state.settings
    if not oidc_enabled(settings):
        raise BadRequestError(
            "OIDC sign-in is not configured (R2C_OIDC_ISSUER is not set)",
            hint="sign in with an API key",
        )
    document = await _discovery(request)
    store = ui_sessions.of(request)
    old = await store.current(request)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(32)
    query = urlencode({
        "response_type": "code",
        "client_id": _client_id(settings),
        "redirect_uri": _redirect_uri(request),
        "scope": "openid profile",
        "state": state,
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    })  # fmt: skip
    response = RedirectResponse(f"{document['authorization_endpoint']}?{query}", status_code=302)
    login = {"state": state, "verifier": verifier, "next": safe_next(next)}
    store.attach(response, request, *await store.begin(login=login, replaces=old))
    return response


@router.get("/callback")
async def oidc_callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    store = ui_sessions.of(request)
    session = await store.current(request)
    expected = session.login.get("state") if session is not None else None
    if error or not code or not state or not expected:
        raise AuthenticationError(
            f"the sign-in did not complete{f' ({error[:80]})' if error else ''}",
            hint="start again from /ui/login",
        )
    if not hmac.compare_digest(state.encode(), expected.encode()):
        raise AuthenticationError(
            "the sign-in answer does not belong to this browser's sign-in (state differs)",
            hint="start again from /ui/login",
        )
    assert session is not None
    settings: Settings = request.app.state.settings
    document = await _discovery(request)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": _redirect_uri(request),
        "client_id": _client_id(settings),
        "code_verifier": session.login["verifier"],
    }
    if settings.ui_oidc_client_secret:
        form["client_secret"] = settings.ui_oidc_client_secret
    tokens = await _json(str(document["token_endpoint"]), form)
    token = tokens.get("access_token")
    verifier = _oidc(request)
    if not isinstance(token, str) or verifier is None:
        raise AuthenticationError("the OIDC issuer returned no access token", hint="sign in again")
    try:
        principal = await verifier.verify(token)
    except TokenRejected as err:
        await record_refusal(request, "auth.failed", reason=f"ui_token_{err.reason}")
        raise AuthenticationError(err.message, hint=err.hint) from None
    except IssuerUnavailable as err:
        raise DependencyUnavailableError(
            f"the OIDC issuer's keys cannot be obtained: {err}", hint="retry shortly"
        ) from None
    return await _signed_in(request, principal, "oidc", session.login.get("next", HOME), session)
