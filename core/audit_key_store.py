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
from core.audit_keys import AuditKeyError, AuditKeyFile, AuditKeyRing
from core.errors import R2CError
from core.secrets import CheckAndSetConflictError, CheckAndSetStore
from core.settings import Settings
from core.vault import UnavailableSecretStore, VaultSecretStore, open_secret_store

VAULT_KEY_PATH = "r2c/audit-hmac-keys"
RECHECK_SECONDS = 5.0
MAX_ATTEMPTS = 50


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


def vault_store(settings: Settings) -> tuple[CheckAndSetStore, str]:
    """The configured Vault, and how messages name the ring's place in it."""
    store = open_secret_store(settings)
    if isinstance(store, UnavailableSecretStore):
        raise AuditKeyError(
            f"the audit keys (R2C_AUDIT_KEY=vault) cannot be read: {store.message}",
            hint=f"{store.hint}; or set R2C_AUDIT_KEY=file to keep them under R2C_HOME",
        )
    assert isinstance(store, VaultSecretStore)  # the only other store open_secret_store makes
    return store, f"Vault ({settings.vault_kv_mount}/{VAULT_KEY_PATH}) at {store.url}"


def load_or_create_in_vault(store: CheckAndSetStore, where: str) -> AuditKeyRing:
    """The ring in Vault, made with one fresh key when absent (race-free by check-and-set)."""
    try:
        for _ in range(MAX_ATTEMPTS):
            found = store.read_versioned(VAULT_KEY_PATH)
            if found is not None:
                return audit_keys.parse(f"ring in {where}", found.value)
            first = audit_keys.new_key()
            ring = AuditKeyRing(first.id, (first,))
            try:
                store.write_if_version(VAULT_KEY_PATH, audit_keys.document(ring), 0)
                return ring
            except CheckAndSetConflictError:
                continue  # another process created it first: its ring is the one
    except AuditKeyError:
        raise
    except R2CError as err:
        raise AuditKeyError(
            f"the audit keys cannot be read from {where}: {err.message}", hint=err.hint
        ) from None
    raise AuditKeyError(f"the audit key ring in {where} keeps changing", hint="retry")


def rotate_in_vault(store: CheckAndSetStore, where: str) -> AuditKeyRing:
    """A fresh current key in the ring in Vault; concurrent rotations each keep their key."""
    for _ in range(MAX_ATTEMPTS):
        found = store.read_versioned(VAULT_KEY_PATH)
        if found is None:
            return load_or_create_in_vault(store, where)
        ring = audit_keys.parse(f"ring in {where}", found.value)
        fresh = audit_keys.new_key()
        rotated = AuditKeyRing(fresh.id, (*ring.keys, fresh))
        try:
            store.write_if_version(VAULT_KEY_PATH, audit_keys.document(rotated), found.version)
            return rotated
        except CheckAndSetConflictError:
            continue
    raise AuditKeyError(f"the audit key ring in {where} keeps changing", hint="retry")


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
