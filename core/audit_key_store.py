"""Which store holds the audit chain's HMAC keys, by `R2C_AUDIT_KEY`: the key file under
R2C_HOME (`file`) or one KV v2 value in the configured Vault (`vault`, `r2c/audit-hmac-keys`).

Every process that writes or verifies audit events goes through here. Both sources are lazy:
nothing is read or created until the first event is written or verified.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from core import audit_keys
from core.audit_keys import KIND, AuditKeyError, AuditKeyFile, AuditKeyRing
from core.errors import R2CError
from core.secrets import CheckAndSetStore
from core.settings import Settings

VAULT_KEY_PATH = KIND.vault_path
RECHECK_SECONDS = 5.0


class AuditKeySource(Protocol):
    """The ring of this system as it is now. Blocking: call it off the event loop."""

    def ring(self, fresh: bool = False) -> AuditKeyRing:
        """`fresh`: read the store now, not a copy of the last few seconds."""
        ...


class AuditKeyVault:
    """The ring in Vault, created on first use (check-and-set: one creator wins), re-read every
    `RECHECK_SECONDS` so a rotation made elsewhere is picked up."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._ring: AuditKeyRing | None = None
        self._read_at = 0.0

    def ring(self, fresh: bool = False) -> AuditKeyRing:
        with self._lock:
            stale = time.monotonic() - self._read_at >= RECHECK_SECONDS
            if self._ring is None or stale or fresh:
                self._ring = load_or_create_in_vault(*vault_store(self._settings))
                self._read_at = time.monotonic()
            return self._ring


vault_store = KIND.open_vault  # the configured Vault, and how messages name the ring in it


def load_or_create_in_vault(store: CheckAndSetStore, where: str) -> AuditKeyRing:
    """The ring in Vault, made with one fresh key when absent (race-free by check-and-set)."""
    try:
        return KIND.load_or_create_in_vault(store, where)[0]
    except AuditKeyError:
        raise
    except R2CError as err:
        raise AuditKeyError(
            f"the audit keys cannot be read from {where}: {err.message}", hint=err.hint
        ) from None


rotate_in_vault = KIND.rotate_in_vault  # concurrent rotations each keep their key


def open_audit_keys(settings: Settings) -> AuditKeySource:
    """The audit key ring of this system, wherever R2C_AUDIT_KEY keeps it."""
    if settings.audit_key == "vault":
        return AuditKeyVault(settings)
    return AuditKeyFile(settings.home)


def rotate(settings: Settings) -> AuditKeyRing:
    """A fresh current audit key, older keys kept. Blocking."""
    if settings.audit_key == "vault":
        return rotate_in_vault(*vault_store(settings))
    return audit_keys.rotate_file(settings.home)
