"""What a request may cost the API before anyone knows who sent it.

FastAPI reads and parses a body before any dependency runs, authentication included. This pure
ASGI middleware runs first: a body over `R2C_MAX_BODY_BYTES` is refused with 413 (a declared
Content-Length up front, a chunked body as soon as it has streamed past the limit), and a
request to `/api/v1/` that carries no credentials at all is answered 401 before its body is
read. Whether the credentials are valid is still decided by the route's dependency.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

PROTECTED_PREFIX = "/api/v1/"
# Webhook deliveries carry a signature instead of a key; their route checks it (401 if wrong).
SIGNED_PREFIXES = ("/api/v1/webhooks/",)


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the limit; the app's handler for
    HTTP exceptions answers it (FastAPI re-raises HTTPExceptions met while reading a body)."""

    def __init__(self, limit: int) -> None:
        # The rest of the body is never read: the connection cannot carry another request.
        super().__init__(
            413, f"the request body is larger than {limit} bytes", {"connection": "close"}
        )


class RequestGuard:
    """Refuses oversized bodies and credential-less API requests before the app reads them."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _answer(send, 400, "BadRequest", "Content-Length is not a number",
                              "send the body's length in bytes, or no Content-Length",
                              {"connection": "close"})  # fmt: skip
                return
            if int(declared) > self.max_body_bytes:
                await _answer(
                    send,
                    413,
                    "PayloadTooLarge",
                    f"the request body ({int(declared)} bytes) is larger than "
                    f"{self.max_body_bytes} bytes",
                    "send less: pass references, not contents (R2C_MAX_BODY_BYTES is the limit)",
                    {"connection": "close"},
                )
                return
        path = scope["path"]
        keyed = path.startswith(PROTECTED_PREFIX) and not path.startswith(SIGNED_PREFIXES)
        if keyed and not _has_credentials(headers):
            unread = declared not in (None, b"0") or b"transfer-encoding" in headers
            await _answer(
                send,
                401,
                "Unauthenticated",
                "an API key is required",
                "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; "
                "`r2c up` writes the admin key to R2C_HOME/admin.key",
                {"www-authenticate": "Bearer", **({"connection": "close"} if unread else {})},
            )
            return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited_receive


def _has_credentials(headers: dict[bytes, bytes]) -> bool:
    if headers.get(b"x-api-key", b"").strip():
        return True
    scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
    return scheme.lower() == b"bearer" and bool(token.strip())


async def _answer(
    send: Send,
    status: int,
    error_type: str,
    message: str,
    hint: str,
    extra_headers: dict[str, str] | None = None,
) -> None:
    body = json.dumps(error_body(error_type, message, hint)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    # With "connection: close" where a body was left unread: the connection cannot carry
    # another request.
    headers += [(k.encode(), v.encode()) for k, v in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
