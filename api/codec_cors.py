"""CORS for the codec server only: the Temporal Web UI, a page of another origin, calls
`/codec/*` from the browser. The rest of the API stays same-origin (no CORS headers at all).

Preflights are answered before authentication (a browser sends no credentials with them), and
the UI's origin alone is allowed, with credentials, so the UI's "include cross-origin
credentials" setting works; a wildcard could never be combined with credentials.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

CODEC_PREFIX = "/codec/"
# What the UI sends: its JSON, the namespace it shows, and a token when set to pass one.
ALLOWED_HEADERS = ["Authorization", "Authorization-Extras", "Content-Type", "X-API-Key",
                   "X-Namespace"]  # fmt: skip
PREFLIGHT_CACHE_SECONDS = 600


def origin_of(url: str) -> str:
    """The origin (scheme, host, port) of the UI's URL, which may carry a path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class CodecCors:
    """Applies CORS for the origin of `ui_url` to requests under `/codec/`, and passes every
    other one through untouched."""

    def __init__(self, app: ASGIApp, ui_url: str) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=[origin_of(ui_url)],
            allow_methods=["POST"],
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=True,
            max_age=PREFLIGHT_CACHE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CODEC_PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
