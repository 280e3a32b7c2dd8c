"""The dashboard as an application mounted at /ui by the API (api/app.py).

A mounted application of its own: its pages are not API operations (not in the API's OpenAPI
document but in their own, /ui/openapi.json: api/ui/openapi.py; no bearer keys: a session
cookie instead), and it answers errors as HTML pages. It shares the
API's state (store, Temporal gateway, key verifier, settings), so every action goes through
the same services, role and scope checks, and audit trail as the API's routes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.service import RPCError

from api.auth_audit import record_forbidden
from api.gateway import rpc_error
from api.ui import auth, pages, saml
from api.ui import openapi as ui_openapi
from api.ui import sessions as ui_sessions
from api.ui.render import page
from core.errors import R2CError

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

# No inline script or style anywhere: scripts and styles come from /ui/static only, so an
# injected <script> does nothing. No framing (clickjacking on the action buttons).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """The headers above on every response of the dashboard (pages, redirects, errors,
    static files); static files may be cached (they hold no data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(("/ui/static/", "/static/"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {h[0] for h in HEADERS}
                headers = [h for h in message.get("headers", []) if h[0] not in names]
                extra = [h for h in HEADERS if not (static and h[0] == b"cache-control")]
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_ui_app(parent: FastAPI) -> FastAPI:
    """The dashboard, sharing `parent`'s state (set by its lifespan)."""
    ui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    ui.state = parent.state
    ui.include_router(auth.router)
    ui.include_router(saml.router)  # SAML 2.0 sign-in (docs/dashboard.md#saml-20)
    ui.include_router(pages.router)
    ui.mount("/static", StaticFiles(directory=STATIC), name="static")

    @ui.get("/openapi.json")
    async def openapi(request: Request) -> Response:
        """This document: every dashboard route and every status it answers."""
        # The app from the request, not from the closure: FastAPI caches facts about every
        # endpoint function for the life of the process, so an endpoint that closed over `ui`
        # kept each app made in the process alive, with its Temporal client and runtime.
        return JSONResponse(ui_openapi.build(request.app))

    ui.add_middleware(SecurityHeaders)

    @ui.exception_handler(R2CError)
    async def _domain(request: Request, err: R2CError) -> Response:
        if isinstance(err, pages.NotSignedIn):
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            return RedirectResponse(f"/ui/login?next={target}", status_code=303)
        if err.http_status == 403:
            await record_forbidden(request, err)
        if err.http_status >= 500 and err.http_status != 503:
            log.error("dashboard request failed: %s", err.message)
        return await _error_page(request, err.http_status, err.message, err.hint)

    @ui.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> Response:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in err.errors())
        return await _error_page(request, 422, f"invalid input: {fields}", "check the form")

    @ui.exception_handler(RPCError)
    async def _temporal(request: Request, err: RPCError) -> Response:
        return await _domain(request, rpc_error(err, "the request"))

    # The API answers these as 503 (api/errors.py); here too, as a page, never a 500.
    @ui.exception_handler(OperationalError)
    @ui.exception_handler(PoolTimeoutError)
    async def _store(request: Request, err: Exception) -> Response:
        log.warning("store unavailable: %s", getattr(err, "orig", None) or type(err).__name__)
        return await _error_page(request, 503, "the store is not reachable", "retry shortly")

    @ui.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> Response:
        return await _error_page(request, err.status_code, str(err.detail), None)

    return ui


async def _error_page(request: Request, status: int, message: str, hint: str | None) -> Response:
    try:
        session = await ui_sessions.of(request).current(request)
    except Exception:  # the store is down: the error page still shows
        session = None
    if status == 401:
        session = None
    return page(
        request,
        "error.html",
        session=session,
        status_code=status,
        status=status,
        message=message,
        hint=hint,
    )
