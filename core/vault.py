"""The secret store over Vault KV v2 (hvac), and the choice of store from the settings.

hvac is blocking, so every call runs in a worker thread with bounded connect and read
timeouts: a dead Vault costs seconds, never the minutes of a default socket. Errors are
turned into the system's vocabulary here, with messages that name Vault and say what to do;
no message carries a token, a secret ID or a value."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import hvac.exceptions as vault_errors
import requests

from core.errors import (
    DependencyUnavailableError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    R2CError,
    UpstreamError,
)
from core.secrets import CheckAndSetConflictError, SecretStore, VersionedValue
from core.settings import Settings
from core.vault_login import TokenLogin

log = logging.getLogger("r2c.vault")
T = TypeVar("T")

# Seconds for connecting and for each answer (requests applies it to both).
REQUEST_TIMEOUT = 5
MAX_VALUE_BYTES = 256 * 1024
MAX_PATH_LENGTH = 512
# Segments of letters, digits, `_`, `.` and `-`, never starting with a dot (so no `..`).
SECRET_PATH = re.compile(
    r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}){0,15}"
)
PATH_HINT = (
    "use up to 16 segments separated by `/`, each of letters, digits, `_`, `.` and `-`, "
    "not starting with a dot"
)
# KV v2 stores a map; a value of any JSON type is kept under this one key.
VALUE_KEY = "value"


def _unreachable(what: str) -> DependencyUnavailableError:
    return DependencyUnavailableError(
        f"Vault {what}",
        hint="check that Vault runs at VAULT_URL (or that `r2c up` started its embedded "
        "OpenBao), then retry",
    )


class VaultSecretStore:
    """`SecretStore` over one Vault's KV v2 mount, with token or AppRole authentication."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        mount: str = "secret",
        timeout: int = REQUEST_TIMEOUT,
    ) -> None:
        self.url = url
        self.mount = mount
        self._client = hvac.Client(url=url, timeout=timeout)
        self.login = TokenLogin(self._client, token=token, role_id=role_id, secret_id=secret_id)

    async def write(self, path: str, value: Any) -> int:
        key = _checked_path(path)
        _check_value(value)
        answer = await self._call(
            lambda kv: kv.create_or_update_secret(
                path=key, secret={VALUE_KEY: value}, mount_point=self.mount
            ),
            missing=lambda: UpstreamError(
                f"Vault has no KV v2 secrets engine at `{self.mount}/`",
                hint="enable one (`bao secrets enable -path=MOUNT kv-v2`) or set VAULT_KV_MOUNT",
            ),
        )
        return int(answer["data"]["version"])

    async def read(self, path: str, version: int | None = None) -> Any:
        key = _checked_path(path)
        if version is not None and (isinstance(version, bool) or version < 1):
            raise InvalidInputError(
                "a secret version is a whole number from 1", hint="omit it for the newest"
            )
        which = f"version {version} of " if version is not None else ""
        answer = await self._call(
            lambda kv: kv.read_secret_version(
                path=key, version=version, mount_point=self.mount, raise_on_deleted_version=True
            ),
            missing=lambda: NotFoundError(
                f"Vault has no {which}secret `{key}` in `{self.mount}/`",
                hint="write it first, or ask for a version that exists",
            ),
        )
        data = answer["data"]["data"]
        # A secret written by another tool is a plain map: hand it over whole.
        if isinstance(data, dict) and set(data) == {VALUE_KEY}:
            return data[VALUE_KEY]
        return data

    def read_versioned(self, path: str) -> VersionedValue | None:
        """`CheckAndSetStore.read_versioned`: blocking, for synchronous callers."""
        key = _checked_path(path)
        try:
            answer = self._blocking(
                lambda kv: kv.read_secret_version(
                    path=key, mount_point=self.mount, raise_on_deleted_version=False
                ),
                missing=lambda: NotFoundError(f"Vault has no secret `{key}`"),
            )
        except NotFoundError:
            return None
        version = int(answer["data"]["metadata"]["version"])
        data = answer["data"]["data"]
        if data is None:  # the newest version was deleted (or destroyed), not the path
            raise UpstreamError(
                f"the newest version ({version}) of `{key}` in `{self.mount}/` was deleted",
                hint=f"undelete it (`bao kv undelete -versions={version} {self.mount}/{key}`)",
            )
        if isinstance(data, dict) and set(data) == {VALUE_KEY}:
            return VersionedValue(data[VALUE_KEY], version)
        return VersionedValue(data, version)

    def write_if_version(self, path: str, value: Any, expected_version: int) -> int:
        """`CheckAndSetStore.write_if_version`: KV v2 check-and-set (`cas`), blocking."""
        key = _checked_path(path)
        _check_value(value)
        if isinstance(expected_version, bool) or expected_version < 0:
            raise InvalidInputError(
                "an expected version is a whole number from 0", hint="0 creates only if absent"
            )

        def swap(kv: Any) -> Any:
            try:
                return kv.create_or_update_secret(
                    path=key,
                    secret={VALUE_KEY: value},
                    cas=expected_version,
                    mount_point=self.mount,
                )
            except vault_errors.InvalidRequest as err:
                # Vault says a lost check-and-set with a 400 and this sentence, nothing else.
                if "check-and-set" in str(err):
                    return None
                raise

        answer = self._blocking(
            swap,
            missing=lambda: UpstreamError(
                f"Vault has no KV v2 secrets engine at `{self.mount}/`",
                hint="enable one (`bao secrets enable -path=MOUNT kv-v2`) or set VAULT_KV_MOUNT",
            ),
        )
        if answer is None:
            raise CheckAndSetConflictError(
                f"`{key}` in `{self.mount}/` changed since version {expected_version} was read",
                hint="read it again and retry",
            )
        return int(answer["data"]["version"])

    async def check(self) -> None:
        # lookup-self needs only the default policy, and fails when Vault is down, sealed,
        # or the token (or AppRole login) is refused.
        await self._call(lambda _kv: self._client.auth.token.lookup_self())

    async def _call(
        self,
        operation: Callable[[Any], T],
        missing: Callable[[], R2CError] | None = None,
    ) -> T:
        return await asyncio.to_thread(self._blocking, operation, missing)

    def _blocking(self, operation: Callable[[Any], T], missing: Callable[[], R2CError] | None) -> T:
        for attempt in (1, 2):
            try:
                self.login.ensure()
                return operation(self._client.secrets.kv.v2)
            except vault_errors.Forbidden:
                # An AppRole token can be revoked or expire early: one fresh login, then
                # a refusal is about the policy.
                if self.login.uses_approle and attempt == 1:
                    self.login.forget()
                    continue
                raise self._refused() from None
            except vault_errors.InvalidPath:
                if missing is None:
                    raise _unreachable("answered 404 to a health check") from None
                raise missing() from None
            except (vault_errors.VaultError, requests.exceptions.RequestException) as err:
                raise self._translated(err) from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def _refused(self) -> UpstreamError:
        who = "the AppRole login's token" if self.login.uses_approle else "VAULT_TOKEN"
        return UpstreamError(
            f"Vault refused {who}: permission denied",
            hint=f"give it a policy that allows create, read and update on `{self.mount}/data/*` "
            "and read on `auth/token/lookup-self`",
        )

    def _translated(self, err: Exception) -> R2CError:
        log.warning("vault call failed: %s", type(err).__name__)
        if isinstance(err, requests.exceptions.Timeout):
            return _unreachable("did not answer in time")
        if isinstance(err, requests.exceptions.RequestException):
            return _unreachable("is unreachable")
        if isinstance(err, vault_errors.VaultDown):
            return DependencyUnavailableError(
                "Vault is sealed", hint="unseal it (`bao operator unseal`), or restart `r2c up`"
            )
        if isinstance(err, vault_errors.VaultNotInitialized):
            return DependencyUnavailableError(
                "Vault is not initialised", hint="initialise and unseal it, or restart `r2c up`"
            )
        if isinstance(err, vault_errors.RateLimitExceeded):
            return DependencyUnavailableError(
                "Vault is rate limiting this client", hint="retry later"
            )
        if isinstance(err, vault_errors.Unauthorized | vault_errors.InvalidRequest) and (
            self.login.uses_approle and "login" in str(getattr(err, "url", ""))
        ):
            return UpstreamError(
                "Vault refused the AppRole login",
                hint="check VAULT_ROLE_ID and VAULT_SECRET_ID (a secret ID can expire)",
            )
        if isinstance(err, vault_errors.InternalServerError | vault_errors.BadGateway):
            return _unreachable("failed with a server error")
        if isinstance(err, vault_errors.UnexpectedError):
            return _unreachable("answered with an unexpected status")
        return UpstreamError("Vault rejected the request", hint="see the worker or API log")


def _checked_path(path: str) -> str:
    if not isinstance(path, str) or len(path) > MAX_PATH_LENGTH or not SECRET_PATH.fullmatch(path):
        raise InvalidInputError("not a valid secret path", hint=PATH_HINT)
    return path


def _check_value(value: Any) -> None:
    try:
        encoded = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise InvalidInputError(
            "a secret value must be JSON (no NaN or infinity)", hint="send a JSON value"
        ) from None
    if len(encoded.encode()) > MAX_VALUE_BYTES:
        raise PayloadTooLargeError(
            f"a secret value is limited to {MAX_VALUE_BYTES} bytes of JSON",
            hint="store large material elsewhere and keep a reference in the secret",
        )


class UnavailableSecretStore:
    """The store when no usable Vault is configured: every call is a 503 that says why."""

    def __init__(self, message: str, hint: str) -> None:
        self.message = message
        self.hint = hint

    def _fail(self) -> DependencyUnavailableError:
        return DependencyUnavailableError(self.message, hint=self.hint)

    async def write(self, path: str, value: Any) -> int:  # noqa: ARG002
        raise self._fail()

    async def read(self, path: str, version: int | None = None) -> Any:  # noqa: ARG002
        raise self._fail()

    async def check(self) -> None:
        raise self._fail()


def open_secret_store(settings: Settings) -> SecretStore:
    """The Vault named by `settings.vault_url` (token, else AppRole), or a store that answers
    503 naming what to set."""
    if not settings.vault_url:
        return UnavailableSecretStore(
            "Vault is not configured",
            hint="set VAULT_URL (with VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID), or "
            "start the system with `r2c up`, which runs an embedded OpenBao",
        )
    approle = bool(settings.vault_role_id and settings.vault_secret_id)
    if not settings.vault_token and not approle:
        return UnavailableSecretStore(
            "Vault has no credentials",
            hint="set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for an AppRole login",
        )
    return VaultSecretStore(
        settings.vault_url,
        # AppRole wins when both are given: its tokens are renewed, a fixed token is not.
        token=None if approle else settings.vault_token,
        role_id=settings.vault_role_id,
        secret_id=settings.vault_secret_id,
        mount=settings.vault_kv_mount,
    )
