"""`r2c login --oidc`: a person signs in at the API's OIDC issuer from the terminal.

The authorization code flow with PKCE (S256) of a native app (RFC 8252): a one-shot HTTP
server on 127.0.0.1 at a free port receives the redirect; `state` must be the one sent (a
callback with another is answered 400 and ignored, the flow keeps waiting); the code and its
verifier are traded for tokens at the issuer's token endpoint. The browser is opened with
`webbrowser`, and the URL is printed too, for a machine without one. Tokens are never printed:
they go to the context file (cli/contexts.py), and the refresh token, when the issuer gives
one, renews an expired access token there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from cli.api_client import verify
from cli.contexts import OidcSignIn

TIMEOUT = httpx.Timeout(10.0)
MAX_ANSWER_BYTES = 256 * 1024
MAX_TOKEN_CHARS = 16 * 1024
CALLBACK_PATH = "/callback"
DEFAULT_SCOPE = "openid offline_access"


class SignInError(Exception):
    """The sign-in did not complete: the issuer refused, or could not be reached."""


@dataclass(frozen=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    expires_at: int = 0


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str


def _get_json(url: str) -> dict[str, Any]:
    try:
        with httpx.stream("GET", url, timeout=TIMEOUT, verify=verify()) as resp:
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise SignInError(f"{url} answered more than {MAX_ANSWER_BYTES} bytes")
            status = resp.status_code
    except httpx.HTTPError as err:
        raise SignInError(f"{url} could not be read ({type(err).__name__})") from None
    if status != 200:
        raise SignInError(f"{url} answered HTTP {status}")
    try:
        data = json.loads(body)
    except ValueError:
        raise SignInError(f"{url} did not answer JSON") from None
    if not isinstance(data, dict):
        raise SignInError(f"{url} did not answer a JSON object")
    return data


def discover(issuer: str) -> Endpoints:
    """The issuer's authorization and token endpoints, from its discovery document (whose
    `issuer` must be the one asked for, as the API checks it)."""
    doc = _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    if doc.get("issuer") != issuer:
        raise SignInError(
            f"the discovery document is of issuer {doc.get('issuer')!r}, not {issuer!r}"
            " (give --issuer exactly as the API's R2C_OIDC_ISSUER)"
        )
    auth, token = doc.get("authorization_endpoint"), doc.get("token_endpoint")
    if not isinstance(auth, str) or not isinstance(token, str):
        raise SignInError("the issuer publishes no authorization or token endpoint")
    for url in (auth, token):
        parts = urlsplit(url)
        loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise SignInError(f"the issuer's endpoint {url} is not https")
    return Endpoints(auth, token)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge): 64 random bytes as the verifier (86 characters)."""
    verifier = _b64(secrets.token_bytes(64))
    return verifier, _b64(hashlib.sha256(verifier.encode()).digest())


@dataclass
class _Callback:
    state: str
    result: dict[str, str] | None = None
    done: threading.Event = field(default_factory=threading.Event)


_PAGE = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>r2c</title></head>"
    "<body><p>{}</p></body></html>"
)


def _handler(callback: _Callback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
            pass  # the query holds the code: it is not logged

        def _answer(self, status: int, text: str) -> None:
            data = _PAGE.format(text).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != CALLBACK_PATH or callback.done.is_set():
                self._answer(404, "Not found.")
                return
            query = {k: v[0] for k, v in parse_qs(parts.query[:8192]).items()}
            # Only the answer to our own request counts (RFC 6749 10.12): another state is
            # someone else's code, or a forged one, and the flow keeps waiting.
            if not hmac.compare_digest(query.get("state", ""), callback.state):
                self._answer(400, "This sign-in answer is not for this r2c login.")
                return
            callback.result = query
            if "code" in query:
                self._answer(200, "Signed in. You can close this tab and go back to r2c.")
            else:
                self._answer(400, "The sign-in was refused; r2c says why.")
            callback.done.set()

    return Handler


def _form_post(url: str, form: dict[str, str]) -> dict[str, Any]:
    try:
        resp = httpx.post(url, data=form, timeout=TIMEOUT, verify=verify())
    except httpx.HTTPError as err:
        raise SignInError(
            f"the token endpoint could not be reached ({type(err).__name__})"
        ) from None
    try:
        body = resp.json() if len(resp.content) <= MAX_ANSWER_BYTES else None
    except ValueError:
        body = None
    if resp.status_code != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        raise SignInError(f"the token endpoint answered HTTP {resp.status_code} ({error or '-'})")
    return body


def _tokens(body: dict[str, Any]) -> Tokens:
    access = body.get("access_token")
    if not isinstance(access, str) or not 0 < len(access) <= MAX_TOKEN_CHARS:
        raise SignInError("the issuer answered no usable access token")
    refresh_token = body.get("refresh_token")
    expires_in = body.get("expires_in")
    expires_at = 0
    if isinstance(expires_in, int | float) and 0 < expires_in <= 366 * 86400:
        expires_at = int(time.time() + expires_in)
    return Tokens(
        access,
        refresh_token if isinstance(refresh_token, str) and len(refresh_token) <= 8192 else "",
        expires_at,
    )


def graphical() -> bool:
    """Whether a browser can open here without taking over the terminal: on a Linux machine
    without a display, webbrowser would start a text browser (lynx, w3m) in the foreground.
    BROWSER names one explicitly."""
    if sys.platform in ("darwin", "win32") or os.environ.get("BROWSER"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def sign_in(
    issuer: str,
    client_id: str,
    *,
    scope: str = DEFAULT_SCOPE,
    timeout: float = 300.0,
    open_browser: bool = True,
    say: Callable[[str], None] = print,
) -> tuple[Tokens, OidcSignIn]:
    """Run the flow to its end: the tokens, and how to refresh them."""
    endpoints = discover(issuer)
    verifier, challenge = pkce_pair()
    callback = _Callback(state=secrets.token_urlsafe(32))
    server = HTTPServer(("127.0.0.1", 0), _handler(callback))
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}{CALLBACK_PATH}"
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": callback.state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    sep = "&" if urlsplit(endpoints.authorization).query else "?"
    url = f"{endpoints.authorization}{sep}{urlencode(query)}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    thread.daemon = True
    thread.start()
    try:
        say(f"Sign in at {issuer} in the browser; if none opens, visit this URL:\n  {url}")
        if open_browser and graphical():
            try:
                webbrowser.open(url)
            except webbrowser.Error:
                pass  # printed above
        if not callback.done.wait(timeout):
            raise SignInError(
                f"no sign-in within {timeout:.0f} s (the URL above stays valid no more)"
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    answer = callback.result or {}
    if "code" not in answer:
        why = answer.get("error", "no code")
        detail = answer.get("error_description", "")[:200]
        raise SignInError(
            f"the issuer refused the sign-in: {why}" + (f" ({detail})" if detail else "")
        )
    tokens = _tokens(
        _form_post(
            endpoints.token,
            {
                "grant_type": "authorization_code",
                "code": answer["code"],
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "code_verifier": verifier,
            },
        )
    )
    return tokens, OidcSignIn(issuer, client_id, endpoints.token, tokens.refresh_token,
                              tokens.expires_at)  # fmt: skip


def refresh(sign_in: OidcSignIn) -> Tokens:
    """New tokens for a sign-in whose access token has expired (refresh token grant)."""
    body = _form_post(
        sign_in.token_endpoint,
        {
            "grant_type": "refresh_token",
            "refresh_token": sign_in.refresh_token,
            "client_id": sign_in.client_id,
        },
    )
    return _tokens(body)
