"""One place that turns every error into an HTTP answer that says what is wrong and what to do.

Body shape (`api.openapi.ErrorBody`):
`{"error": {"type", "message", "hint"?, "fields"?, "details"?, "request_id"}}`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from api.auth_audit import record_forbidden
from api.gateway import is_connect_failure, rpc_error, temporal_unreachable
from core.errors import AuthenticationError, DependencyUnavailableError, R2CError, RateLimitedError
from core.logging import request_id_var

log = logging.getLogger("r2c.api")

_HTTP_TYPES = {
    400: ("BadRequest", "send a body the route's schema describes, as JSON"),
    404: ("NotFound", "GET /docs lists the routes"),
    405: ("MethodNotAllowed", "GET /docs lists the methods of each route"),
    413: ("PayloadTooLarge", "send less; R2C_MAX_BODY_BYTES sets the limit"),
}


def error_body(
    error_type: str,
    message: str,
    hint: str | None = None,
    *,
    fields: list[dict[str, str]] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The error body, with the request id of the current request."""
    body: dict[str, Any] = {"type": error_type, "message": message}
    if hint:
        body["hint"] = hint
    if fields:
        body["fields"] = fields
    if details:
        body["details"] = details
    body["request_id"] = request_id_var.get()
    return {"error": body}


def error_response(err: R2CError) -> JSONResponse:
    """The answer to one of our errors, with the headers its status calls for."""
    details = dict(err.details)
    fields = details.pop("fields", None)
    headers: dict[str, str] = {}
    if isinstance(err, RateLimitedError):
        headers["Retry-After"] = str(err.retry_after)
    if isinstance(err, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        error_body(err.error_type, err.message, err.hint, fields=fields, details=details),
        status_code=err.http_status,
        headers=headers or None,
    )


def field_errors(errors: Any, prefix: tuple[str | int, ...] = ()) -> list[dict[str, str]]:
    """Pydantic errors as `[{"field": "body.runtime.command", "message": ...}]`."""
    out = []
    for e in errors:
        loc = [*prefix, *e.get("loc", ())]
        out.append({"field": ".".join(str(p) for p in loc) or "body", "message": e["msg"]})
    return out


def install(app: FastAPI) -> None:
    """Register the exception handlers on the app."""

    @app.exception_handler(R2CError)
    async def _domain(request: Request, err: R2CError) -> JSONResponse:
        if err.http_status >= 500 and err.http_status != 503:
            log.error("request failed: %s", err.message)
        if err.http_status == 403:  # every denied authorization is in the audit trail
            await record_forbidden(request, err)
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        fields = field_errors(err.errors())
        return JSONResponse(
            error_body(
                "ValidationError",
                f"{len(fields)} invalid field(s): " + ", ".join(f["field"] for f in fields),
                "fix the fields listed; GET /docs shows the expected shapes",
                fields=fields,
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        kind, hint = _HTTP_TYPES.get(err.status_code, ("HTTPError", None))
        return JSONResponse(
            error_body(kind, str(err.detail), hint),
            status_code=err.status_code,
            headers=getattr(err, "headers", None),
        )

    @app.exception_handler(RPCError)
    async def _rpc(request: Request, err: RPCError) -> JSONResponse:
        return await _domain(request, rpc_error(err, "the request"))

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeoutError)
    async def _store(request: Request, err: Exception) -> JSONResponse:
        log.warning("store unavailable: %s", getattr(err, "orig", None) or type(err).__name__)
        unavailable = DependencyUnavailableError(
            "the store is not reachable", hint="check POSTGRES_URL, or the R2C_HOME folder"
        )
        return await _domain(request, unavailable)

    # Registered for RuntimeError, not only Exception, so that Starlette's ordinary handler
    # answers it: handlers of `Exception` run in the server-error middleware, which re-raises.
    @app.exception_handler(RuntimeError)
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        if is_connect_failure(err):
            return await _domain(request, temporal_unreachable())
        log.exception("unexpected error")
        return JSONResponse(
            error_body("InternalError", "the server failed to answer; the log has the details"),
            status_code=500,
        )
