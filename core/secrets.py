"""Where secret configuration values live: a Vault KV v2 mount (`core/vault.py`), never the
store. Code that handles secrets depends on this protocol, so it reads the same whichever
Vault (the embedded OpenBao, or one named by `VAULT_URL`) is behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import ConflictError


class SecretStore(Protocol):
    """Versioned secret values by path. Every method raises `DependencyUnavailableError`
    naming Vault when it cannot be reached, and `NotFoundError` for a missing path/version."""

    async def write(self, path: str, value: Any) -> int:
        """Store a JSON value at `path` as a new version; returns that version (1, 2, ...)."""
        ...

    async def read(self, path: str, version: int | None = None) -> Any:
        """The value at `path` (the newest version unless `version` is given)."""
        ...

    async def check(self) -> None:
        """Raise unless Vault is reachable, unsealed and the token or AppRole login works."""
        ...


class CheckAndSetConflictError(ConflictError):
    """A check-and-set write lost: the path changed since it was read. Read again and retry."""

    error_type = "CheckAndSetConflictError"


@dataclass(frozen=True)
class VersionedValue:
    """A value as read, with the KV v2 version it is: the `expected_version` of the next
    `write_if_version`."""

    value: Any
    version: int


class CheckAndSetStore(Protocol):
    """Blocking KV v2 reads and check-and-set writes, for state that several processes create
    and update at once (the payload key ring) without a lock server. Blocking because its users
    are synchronous (the payload codec's key source); call it from a thread in async code."""

    def read_versioned(self, path: str) -> VersionedValue | None:
        """The newest value at `path` with its version; None when nothing was ever written."""
        ...

    def write_if_version(self, path: str, value: Any, expected_version: int) -> int:
        """Write `value` only if the newest version at `path` is still `expected_version` (0: only
        if `path` was never written); returns the new version, or raises
        `CheckAndSetConflictError` when another writer came first."""
        ...
