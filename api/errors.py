"""One place that turns every error into an HTTP answer that says what is wrong and what to do.

Body shape: `{"error": {"type", "message", "hint", "fields"?, "details"?, "request_id"}}`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from core.errors import (
    DependencyUnavailableError,
    NotFoundError,
    R2CError,
)
from core.logging import request_id_var

log = logging.getLogger("r2c.api")

_UNREACHABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}


def error_body(
    error_type: str, message: str, hint: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": error_type, "message": message}
    if hint:
        body["hint"] = hint
    body.update({k: v for k, v in extra.items() if v})
    body["request_id"] = request_id_var.get()
    return {"error": body}


def field_errors(errors: Any, prefix: tuple[str | int, ...] = ()) -> list[dict[str, str]]:
    """Pydantic errors as `[{"field": "body.runtime.command", "message": ...}]`."""
    out = []
    for e in errors:
        loc = [*prefix, *e.get("loc", ())]
        out.append({"field": ".".join(str(p) for p in loc) or "body", "message": e["msg"]})
    return out


def temporal_unreachable() -> DependencyUnavailableError:
    return DependencyUnavailableError(
        "Temporal is not reachable",
        hint="check that the Temporal server at TEMPORAL_ADDRESS is up; GET /ready tells",
    )


def is_connect_failure(err: BaseException) -> bool:
    """A lazy client that never reached the server raises a bare RuntimeError from the SDK's
    core, not an RPCError; its message is the only way to tell it apart."""
    return isinstance(err, RuntimeError) and str(err).startswith("Failed client connect")


def temporal_error(err: RPCError, what: str) -> R2CError:
    """Map a Temporal RPC failure to our vocabulary (an unreachable server is a 503)."""
    if err.status in _UNREACHABLE:
        return temporal_unreachable()
    if err.status == RPCStatusCode.NOT_FOUND:
        return NotFoundError(f"{what} not found")
    return R2CError(f"Temporal refused the request: {err.message}")


def install(app: FastAPI) -> None:
    """Register the exception handlers on the app."""

    @app.exception_handler(R2CError)
    async def _domain(_: Request, err: R2CError) -> JSONResponse:
        if err.http_status >= 500 and err.http_status != 503:
            log.error("request failed: %s", err.message)
        return JSONResponse(
            error_body(err.error_type, err.message, err.hint, **err.details),
            status_code=err.http_status,
        )

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
        kind = "NotFound" if err.status_code == 404 else "HTTPError"
        return JSONResponse(
            error_body(kind, str(err.detail)),
            status_code=err.status_code,
            headers=getattr(err, "headers", None),
        )

    @app.exception_handler(RPCError)
    async def _rpc(_: Request, err: RPCError) -> JSONResponse:
        mapped = temporal_error(err, "resource")
        return await _domain(_, mapped)

    @app.exception_handler(OperationalError)
    async def _store(_: Request, err: OperationalError) -> JSONResponse:
        log.warning("store unavailable: %s", err.orig)
        unavailable = DependencyUnavailableError(
            "the store is not reachable", hint="check POSTGRES_URL, or the R2C_HOME folder"
        )
        return await _domain(_, unavailable)

    # Registered for RuntimeError, not only Exception, so that Starlette's ordinary handler
    # answers it: handlers of `Exception` run in the server-error middleware, which re-raises.
    @app.exception_handler(RuntimeError)
    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        if is_connect_failure(err):
            return await _domain(_, temporal_unreachable())
        log.exception("unexpected error")
        return JSONResponse(
            error_body("InternalError", "the server failed to answer; the log has the details"),
            status_code=500,
        )
