"""A small HTTP client of the API for the CLI commands that go through it (`r2c schedule`).

Where: R2C_API_URL (default http://127.0.0.1:8080, what `r2c up` serves). Which key:
R2C_API_KEY, else the admin key `r2c up` wrote to R2C_HOME/admin.key (default .r2c). A refusal
is an `ApiError` that carries the API's own message and hint.
"""

from __future__ import annotations

import os
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


class ApiClient:
    """Sends one request at a time and answers the decoded JSON body (None when empty)."""

    def __init__(self, url: str | None = None, key: str | None = None) -> None:
        self.url = (url or os.environ.get("R2C_API_URL") or DEFAULT_URL).rstrip("/")
        self.key = key or api_key()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            resp = httpx.request(
                method,
                f"{self.url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {self.key}"},
                timeout=TIMEOUT,
            )
        except httpx.HTTPError as err:
            raise ApiError(
                f"the API at {self.url} did not answer ({err})",
                hint="is `r2c up` running? R2C_API_URL says where the API is",
            ) from None
        if resp.status_code >= 400:
            raise _refusal(resp)
        if not resp.content:
            return None
        return resp.json()


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
