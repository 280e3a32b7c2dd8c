"""A small HTTP client of the API for the CLI commands that go through it (`r2c schedule`,
`r2c get`, `r2c deploy`, ...).

Where and which key: as cli/contexts.py resolves them (flags, R2C_URL / R2C_API_URL and
R2C_API_KEY, the current context, else http://127.0.0.1:8080 with the admin key `r2c up`
wrote to R2C_HOME/admin.key). An https API is verified with R2C_CA_FILE when set (`r2c up
--tls` prints it: R2C_HOME/tls/ca.pem), else the system's CAs (SSL_CERT_FILE). A refusal is an
`ApiError` that carries the API's own message and hint.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 15.0


class ApiError(Exception):
    """The API refused (its message and hint), or could not be reached."""

    def __init__(self, message: str, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status

    def __str__(self) -> str:
        head = f"HTTP {self.status}: {self.message}" if self.status else self.message
        return f"{head}\nhint: {self.hint}" if self.hint else head


class ConfigError(Exception):
    """No key to send: a usage problem, not the API's answer."""


def api_key(home: Path | None = None) -> str:
    key = os.environ.get("R2C_API_KEY", "").strip()
    if key:
        return key
    path = (home or Path(os.environ.get("R2C_HOME", ".r2c"))) / "admin.key"
    try:
        return path.read_text().strip()
    except OSError as err:
        raise ConfigError(
            f"no API key: R2C_API_KEY is not set and {path} cannot be read ({err.strerror})"
        ) from None


def verify() -> ssl.SSLContext | bool:
    """What https answers are verified against: R2C_CA_FILE, else the default CAs."""
    ca_file = os.environ.get("R2C_CA_FILE", "").strip()
    if not ca_file:
        return True
    if not Path(ca_file).is_file():
        raise ConfigError(f"R2C_CA_FILE={ca_file} is not a readable file")
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError):
        raise ConfigError(f"R2C_CA_FILE={ca_file} holds no PEM CA certificate") from None


class ApiClient:
    """Sends one request at a time and answers the decoded JSON body (None when empty)."""

    def __init__(
        self, url: str | None = None, key: str | None = None, oidc_context: str | None = None
    ) -> None:
        if url is None and key is None:
            # Neither given: the same choice as every API command (cli/contexts.py).
            from cli.contexts import resolve

            target = resolve()
            url, key, oidc_context = target.url, target.key, target.oidc_context
        self.url = (url or os.environ.get("R2C_API_URL") or DEFAULT_URL).rstrip("/")
        self.key = key or api_key()
        self.verify = verify()
        # The context of a person's sign-in: a 401 renews its token once (it may expire
        # during a long watch) and the request is sent again.
        self.oidc_context = oidc_context

    def renew(self) -> bool:
        """A new access token from the context's refresh token, after a 401; False when
        there is no sign-in to renew (a ConfigError when it cannot be renewed). A request is
        sent again once: a second 401 is the API's answer."""
        if self.oidc_context is None:
            return False
        from cli.contexts import renew_token

        self.key = renew_token(self.oidc_context)
        return True

    def request(self, method: str, path: str, body: Any = None) -> Any:
        resp = self._send(method, path, body)
        if resp.status_code == 401 and self.renew():
            resp = self._send(method, path, body)
        if resp.status_code >= 400:
            raise _refusal(resp)
        if not resp.content:
            return None
        return resp.json()

    def _send(self, method: str, path: str, body: Any) -> httpx.Response:
        try:
            return httpx.request(
                method,
                f"{self.url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {self.key}"},
                timeout=TIMEOUT,
                verify=self.verify,
            )
        except httpx.HTTPError as err:
            raise ApiError(
                f"the API at {self.url} did not answer ({err})",
                hint="is `r2c up` running? --url, R2C_URL or the context (`r2c context"
                " list`) say where the API is; for https, R2C_CA_FILE names the CA that signed"
                " its certificate",
            ) from None


def _refusal(resp: httpx.Response) -> ApiError:
    try:
        error = resp.json()["error"]
        message = str(error["message"])
        fields = error.get("fields") or []
        if fields:
            message += "".join(f"\n  {f['field']}: {f['message']}" for f in fields)
        return ApiError(message, error.get("hint"), resp.status_code)
    except (ValueError, KeyError, TypeError):
        return ApiError(resp.text[:500] or resp.reason_phrase, status=resp.status_code)
