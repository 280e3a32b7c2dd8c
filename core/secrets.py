"""Where secret configuration values live: a Vault KV v2 mount (`core/vault.py`), never the
store. Code that handles secrets depends on this protocol, so it reads the same whichever
Vault (the embedded OpenBao, or one named by `VAULT_URL`) is behind it."""

from __future__ import annotations

from typing import Any, Protocol


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
