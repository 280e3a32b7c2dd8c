"""A real OIDC issuer for the tests, on a free loopback port: discovery document, JWKS and a
token endpoint (client-credentials grant), signing with keys generated in the test.

It stands in for a real identity provider for the dashboard's sign-in too: an authorization
endpoint (a one-field sign-in page: the user name, no password, users and their groups set by
the test in `users`) and the authorization code grant with PKCE (S256) at the token endpoint.

It also mints tokens directly (`mint`), and the forged ones an attacker would try (`unsigned`,
`hs256_with_public_key`), so each can be presented to the API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, KeyParameters, OKPKey, RSAKey

AUDIENCE = "r2c-api"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64json(value: dict[str, Any]) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class Client:
    secret: str
    groups: list[str]


@dataclass
class Grant:
    """An authorization code, until the token endpoint takes it (once)."""

    user: str
    client_id: str
    redirect_uri: str
    challenge: str


@dataclass
class Issuer:
    url: str
    keys: list[tuple[str, Key]] = field(default_factory=list)  # (alg, key), newest last
    clients: dict[str, Client] = field(default_factory=dict)
    jwks_requests: int = 0
    _serial: int = 0
    users: dict[str, list[str]] = field(default_factory=dict)  # user name -> groups
    codes: dict[str, Grant] = field(default_factory=dict)
    # The code grant's tokens: how long an access token lives, and whether a refresh token
    # (one use each, rotated) comes with it.
    access_seconds: int = 300
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    issue_refresh_tokens: bool = True
    refreshed: int = 0

    def new_key(self, alg: str = "RS256") -> Key:
        """A new signing key, published in the JWKS at once; tokens are signed with it now."""
        self._serial += 1
        kid = f"key-{self._serial}"
        params: KeyParameters = {"kid": kid, "use": "sig", "alg": alg}
        key: Key
        if alg == "RS256":
            key = RSAKey.generate_key(2048, parameters=params)
        elif alg == "ES256":
            key = ECKey.generate_key("P-256", parameters=params)
        else:
            key = OKPKey.generate_key("Ed25519", parameters=params)
        self.keys.append((alg, key))
        return key

    def withdraw(self, kid: str) -> None:
        """Take a key out of the JWKS (what an issuer does some time after a rotation)."""
        self.keys = [(a, k) for a, k in self.keys if k.kid != kid]

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "user-1",
            "preferred_username": "alice",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "groups": ["developers"],
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def mint(self, key: Key | None = None, alg: str | None = None, **claims: Any) -> str:
        """A token signed with `key` (the newest by default), with claims over the defaults."""
        if key is None:
            alg, key = self.keys[-1]
        alg = alg or "RS256"
        header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
        with warnings.catch_warnings():  # joserfc prefers RFC 9864's name for EdDSA
            warnings.simplefilter("ignore", SecurityWarning)
            return jwt.encode(header, self.claims(**claims), key, algorithms=[alg])

    def unsigned(self, **claims: Any) -> str:
        """`alg: none`: no signature at all."""
        return f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(self.claims(**claims))}."

    def hs256_with_public_key(self, **claims: Any) -> str:
        """HS256 with the issuer's public RSA key (PEM) as the HMAC secret: the classic attack
        on verifiers that let the token choose the algorithm."""
        key = self.keys[-1][1]
        assert isinstance(key, RSAKey)
        pem = key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        body = f"{b64json({'alg': 'HS256', 'kid': key.kid, 'typ': 'JWT'})}."
        body += b64json(self.claims(**claims))
        return f"{body}.{b64(hmac.new(pem, body.encode(), hashlib.sha256).digest())}"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "token_endpoint": f"{self.url}/token",
            "authorization_endpoint": f"{self.url}/authorize",
            "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def jwks(self) -> dict[str, Any]:
        self.jwks_requests += 1
        return {"keys": [key.as_dict(private=False) for _, key in self.keys]}

    def sign_in_page(self, query: dict[str, str]) -> str:
        """The authorization endpoint's page: a user name to sign in as (kept as hidden
        fields: the request's parameters)."""
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in query.items()
        )
        return (
            '<!doctype html><html lang="en"><head><title>Test issuer</title></head><body>'
            '<h1>Test identity provider</h1><form method="post" action="/authorize">'
            f'{hidden}<label for="username">User name</label>'
            '<input id="username" name="username" required>'
            '<button type="submit">Sign in</button></form></body></html>'
        )

    def authorize(self, form: dict[str, str]) -> tuple[int, str]:
        """The sign-in form's answer: a redirect to the client with a code (or an error)."""
        redirect = form.get("redirect_uri", "")
        if urlsplit(redirect).scheme not in ("http", "https"):
            return 400, "bad redirect_uri"
        user = form.get("username", "")
        if form.get("response_type") != "code" or form.get("code_challenge_method") != "S256":
            answer = {"error": "invalid_request", "state": form.get("state", "")}
        elif user not in self.users:
            answer = {"error": "access_denied", "state": form.get("state", "")}
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = Grant(
                user, form.get("client_id", ""), redirect, form.get("code_challenge", "")
            )
            answer = {"code": code, "state": form.get("state", "")}
        return 302, f"{redirect}?{urlencode(answer)}"

    def _code_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = b64(hashlib.sha256(verifier.encode()).digest())
        if (
            grant.client_id != form.get("client_id")
            or grant.redirect_uri != form.get("redirect_uri")
            or not hmac.compare_digest(challenge, grant.challenge)
        ):
            return 400, {"error": "invalid_grant"}
        return 200, self._user_tokens(grant)

    def _user_tokens(self, grant: Grant) -> dict[str, Any]:
        token = self.mint(
            sub=grant.user,
            preferred_username=grant.user,
            groups=self.users[grant.user],
            exp=int(time.time()) + self.access_seconds,
        )
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.access_seconds}
        if self.issue_refresh_tokens:
            refresh_token = secrets.token_urlsafe(24)
            self.refresh_tokens[refresh_token] = grant
            answer["refresh_token"] = refresh_token
        return answer

    def _refresh_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
        if grant is None or grant.client_id != form.get("client_id"):
            return 400, {"error": "invalid_grant"}
        self.refreshed += 1
        return 200, self._user_tokens(grant)

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        """The token endpoint: client-credentials grant, client authenticated by secret; or
        the authorization code grant of a public client with PKCE."""
        if form.get("grant_type") == "authorization_code":
            return self._code_token(form)
        if form.get("grant_type") == "refresh_token":
            return self._refresh_token(form)
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        client = self.clients.get(client_id or "")
        if client is None or not hmac.compare_digest(client.secret, secret or ""):
            return 401, {"error": "invalid_client"}
        token = self.mint(sub=client_id, preferred_username=None, groups=client.groups)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 300}


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            length = min(int(self.headers.get("Content-Length") or 0), 10_000)
            return {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}

        def do_GET(self) -> None:
            if self.path.startswith("/authorize?"):
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                data = issuer.sign_in_page(query).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif self.path == "/.well-known/openid-configuration":
                self._send(200, issuer.discovery())
            elif self.path == "/jwks":
                self._send(200, issuer.jwks())
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if self.path == "/authorize":
                status, location = issuer.authorize(self._form())
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path != "/token":
                self._send(404, {"error": "not_found"})
                return
            self._send(*issuer.token(self._form(), self.headers.get("Authorization")))

    return Handler


@contextmanager
def running_issuer() -> Iterator[tuple[Issuer, ThreadingHTTPServer]]:
    """An issuer with one RS256 key, serving until the block ends (or `server.shutdown()`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    issuer = Issuer(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(issuer)
    issuer.new_key()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer, server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
