"""SAML 2.0 sign-in for the dashboard (docs/dashboard.md#saml-20), next to OIDC and API keys.

- `GET /ui/saml/login?next=...`: an AuthnRequest to the IdP (HTTP-Redirect binding); its id
  is kept as this browser's pending sign-in (api/ui/saml_state.py).
- `POST /ui/saml/acs`: the IdP's answer (HTTP-POST binding), verified (api/ui/saml_sp.py),
  answering the pending request and used once; then the same session an OIDC sign-in makes,
  the role from the groups attribute mapped as OIDC maps its groups claim.
- `GET /ui/saml/metadata`: our SP metadata, for the IdP's administrator.

All three answer 404 while R2C_UI_SAML_IDP_METADATA is unset. A refused answer is a 401
error page saying why, audited as `auth.failed` with reason `ui_saml_<reason>`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Annotated, cast

import httpx
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from api.auth_audit import record_refusal
from api.ui import saml_state
from api.ui import sessions as ui_sessions
from api.ui.auth import HOME, _signed_in, safe_next
from api.ui.saml_principal import SamlPrincipal
from api.ui.saml_sp import SamlRefused, ServiceProvider
from core.bounded_read import read_at_most
from core.errors import AuthenticationError, DependencyUnavailableError, NotFoundError
from core.oidc import grants_of_groups, role_and_grants
from core.settings import Settings

router = APIRouter(prefix="/saml")
log = logging.getLogger(__name__)
METADATA_MAX_BYTES = 2 * 1024 * 1024
METADATA_MAX_AGE = 3600.0  # seconds: a rotated IdP certificate is picked up within the hour
RETRY_SECONDS = 300.0  # after a failed refresh
FETCH_TIMEOUT = httpx.Timeout(10.0)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+:-]{0,199}$")


def saml_enabled(settings: Settings) -> bool:
    return settings.ui_saml_idp_metadata is not None


def urls(settings: Settings) -> tuple[str, str]:
    """(entity id, ACS URL), from R2C_UI_PUBLIC_URL (required with SAML)."""
    public = str(settings.ui_public_url or "").rstrip("/")
    return settings.ui_saml_entity_id or f"{public}/ui/saml/metadata", f"{public}/ui/saml/acs"


def _require(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    if not saml_enabled(settings):
        raise NotFoundError(
            "SAML sign-in is not configured (R2C_UI_SAML_IDP_METADATA is not set)",
            hint="sign in from /ui/login",
        )
    return settings


async def provider(request: Request) -> ServiceProvider:
    """The SP, made on first use and again once its IdP metadata is an hour old."""
    settings = _require(request)
    state = request.app.state
    cached = cast(tuple[ServiceProvider, float] | None, getattr(state, "ui_saml", None))
    if cached is not None and time.monotonic() - cached[1] < METADATA_MAX_AGE:
        return cached[0]
    lock = getattr(state, "ui_saml_lock", None)
    if lock is None:  # one per app (and so per event loop): one metadata fetch at a time
        lock = state.ui_saml_lock = asyncio.Lock()
    async with lock:
        cached = cast(tuple[ServiceProvider, float] | None, getattr(state, "ui_saml", None))
        if cached is not None and time.monotonic() - cached[1] < METADATA_MAX_AGE:
            return cached[0]
        try:
            document = await _metadata(str(settings.ui_saml_idp_metadata))
            entity_id, acs_url = urls(settings)
            made = await asyncio.to_thread(
                ServiceProvider,
                entity_id=entity_id,
                acs_url=acs_url,
                idp_metadata=document,
                xmlsec=shutil.which("xmlsec1") or "xmlsec1",
                key_file=settings.ui_saml_sp_key_file,
                cert_file=settings.ui_saml_sp_cert_file,
            )
        except Exception as err:
            if cached is not None:  # the IdP's metadata is away: keep the one we have
                log.warning("SAML IdP metadata not refreshed (%s)", type(err).__name__)
                # ... and try again in RETRY_SECONDS, not on every sign-in meanwhile.
                retry_at = time.monotonic() - METADATA_MAX_AGE + RETRY_SECONDS
                state.ui_saml = (cached[0], retry_at)
                return cached[0]
            log.error("SAML IdP metadata unusable: %s", str(err)[:300])
            raise DependencyUnavailableError(
                "SAML sign-in is unavailable: the IdP's metadata cannot be read or used",
                hint="retry shortly; an admin should check R2C_UI_SAML_IDP_METADATA",
            ) from None
        state.ui_saml = (made, time.monotonic())
        return made


async def _metadata(source: str) -> str:
    if source.startswith(("https://", "http://")):
        async with (
            httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as http,
            http.stream("GET", source) as resp,
        ):
            if resp.status_code != 200:
                raise ValueError(f"the metadata URL answered HTTP {resp.status_code}")
            body = await read_at_most(resp, METADATA_MAX_BYTES)
            if body is None:
                raise ValueError(f"the metadata is over {METADATA_MAX_BYTES} bytes")
        return body.decode()
    data = await asyncio.to_thread(Path(source).expanduser().read_bytes)
    if len(data) > METADATA_MAX_BYTES:
        raise ValueError(f"the metadata is over {METADATA_MAX_BYTES} bytes")
    return data.decode()


@router.get("/login")
async def saml_login(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    """Off to the IdP with a new AuthnRequest; its id is this browser's pending sign-in."""
    sp = await provider(request)
    request_id, location = await asyncio.to_thread(sp.login)
    response = RedirectResponse(location, status_code=303)
    await saml_state.remember(request, response, request_id, safe_next(next))
    return response


@router.get("/metadata")
async def saml_metadata(request: Request) -> Response:
    """Our SP metadata (entity id, ACS URL and binding, signing certificate if any)."""
    sp = await provider(request)
    body = await asyncio.to_thread(sp.metadata)
    return Response(body, media_type="application/samlmetadata+xml")


@router.post("/acs")
async def saml_acs(
    request: Request,
    saml_response: Annotated[str, Form(alias="SAMLResponse", max_length=400_000)] = "",
    relay_state: Annotated[str, Form(alias="RelayState", max_length=1000)] = "",
) -> Response:
    """The IdP's answer: verified, then signed in (a new session), or a 401 page saying why."""
    del relay_state  # where to go is in the pending sign-in, not in what the browser sends
    settings = _require(request)
    sp = await provider(request)
    pending = await saml_state.take(request)
    try:
        if pending is None:
            raise SamlRefused(
                "unknown_request",
                "no SAML sign-in is under way in this browser (it expired, was used, or"
                " the IdP's answer was not asked for)",
                "start again from /ui/login",
            )
        assertion = await asyncio.to_thread(sp.accept, saml_response, pending["saml_request"])
        if not await saml_state.first_use(
            request, sp.idp, assertion.assertion_id, assertion.not_on_or_after
        ):
            raise SamlRefused("replayed", "this assertion has been used already")
        principal = _principal(settings, assertion.name_id, assertion.attributes)
    except SamlRefused as err:
        await record_refusal(request, "auth.failed", reason=f"ui_saml_{err.reason}")
        raise AuthenticationError(err.message, hint=err.hint) from None
    old = await ui_sessions.of(request).current(request)
    response = await _signed_in(request, principal, "saml", pending.get("next", HOME), old)
    saml_state.forget_cookie(request, response)
    return response


def _principal(settings: Settings, name_id: str, attributes: dict[str, list[str]]) -> SamlPrincipal:
    groups_attribute = settings.ui_saml_groups_attribute
    grants = grants_of_groups(attributes.get(groups_attribute, []), settings.ui_saml_roles)
    if not grants:
        raise SamlRefused(
            "no_role",
            "the IdP's assertion grants no role: none of its groups is in"
            " R2C_UI_SAML_ROLE_MAP (or R2C_OIDC_ROLE_MAP)",
            f"ask an admin to add one of your groups (attribute {groups_attribute!r}) to the map",
        )
    role, scoped = role_and_grants(grants)
    named = (
        attributes.get(settings.ui_saml_name_attribute, [])
        if settings.ui_saml_name_attribute
        else []
    )
    candidates = [*named[:1], name_id]
    name = next((n for n in candidates if _NAME.fullmatch(n)), None) or (
        "nameid-"
        + base64.b32encode(hashlib.sha256(name_id.encode()).digest()[:10]).decode().lower()
    )
    return SamlPrincipal(key_id=f"saml:{name_id}", name=name, role=role, grants=scoped)
