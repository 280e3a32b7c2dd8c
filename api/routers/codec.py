"""`/codec`: the codec server the Temporal Web UI calls to show (`/codec/decode`) and to send
(`/codec/encode`) payloads, which Temporal itself only ever holds encrypted. Same API keys as
the rest of the API (viewer or above), or the codec session a person opens at `/codec/session`
(the UI can send cookies, not keys: see `api.codec_session`); CORS for the UI's origin is in
`api.codec_cors`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from api import codec_session
from api.auth import require
from api.deps import GatewayDep, SettingsDep
from api.openapi import errors
from api.services.codec import transform
from api.services.codec_page import session_page
from core.models.apikeys import Principal, Role
from core.models.codec import CodecPayloads
from core.models.codec_session import CodecLogin, CodecSessionInfo

log = logging.getLogger(__name__)
router = APIRouter(prefix="/codec", tags=["codec"])

KeyOrSession = Annotated[Principal, Depends(codec_session.ViewerByKeyOrSession)]
_viewer_by_key = require(Role.VIEWER)


@router.post("/decode", response_model=CodecPayloads, response_model_exclude_unset=True)
async def decode(body: CodecPayloads, _: KeyOrSession, gateway: GatewayDep) -> CodecPayloads:
    """Decrypt payloads (those not encrypted come back unchanged). 422 names the key of a
    payload that cannot be decrypted: unknown here, or altered."""
    return await transform(gateway.client, body, encode=False)


@router.post("/encode", response_model=CodecPayloads, response_model_exclude_unset=True)
async def encode(body: CodecPayloads, _: KeyOrSession, gateway: GatewayDep) -> CodecPayloads:
    """Encrypt payloads with the current key, as a client of this system would."""
    return await transform(gateway.client, body, encode=True)


@router.get("/session", response_class=HTMLResponse)
async def session_form(request: Request, settings: SettingsDep) -> HTMLResponse:
    """A page to sign in with an API key, so the Temporal Web UI's calls to this codec server
    (with its "include cross-origin credentials" setting on) carry a codec session."""
    # The codec server as this browser reached it, which is what the UI's page must call.
    codec_url = str(request.base_url).rstrip("/") + codec_session.COOKIE_PATH
    return HTMLResponse(session_page(settings.temporal_ui, codec_url))


@router.post(
    "/session",
    response_model=CodecSessionInfo,
    responses=errors(401, 429, 503),
)
async def open_session(body: CodecLogin, request: Request, response: Response) -> CodecSessionInfo:
    """Verify the API key (as every route does, failures rate-limited) and set an HttpOnly,
    SameSite=Strict cookie for `/codec` holding a signed session of that key for 8 hours; the
    key itself is never stored."""
    principal = await _viewer_by_key(request, None, body.api_key.get_secret_value())
    token, expires = codec_session.issue(request.app.state, principal)
    codec_session.set_cookie(response, request, token)
    expires_at = datetime.fromtimestamp(expires, UTC)
    log.info("codec session opened for key %s (%s) until %s", principal.name,
             principal.role.value, expires_at.isoformat())  # fmt: skip
    return CodecSessionInfo(key_name=principal.name, role=principal.role, expires_at=expires_at)


@router.delete("/session", status_code=204)
async def close_session(request: Request) -> Response:
    """Sign out: the browser drops the codec session cookie."""
    response = Response(status_code=204)
    codec_session.clear_cookie(response, request)
    log.info("codec session closed by %s", request.client.host if request.client else "unknown")
    return response
