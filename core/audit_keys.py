"""The audit chain's HMAC keys, kept outside the database (`R2C_AUDIT_KEY`).

`file` (the default): `R2C_HOME/audit-hmac.key`, 0600 in the 0700 home, created by the first
process that writes an audit event: `{"current": id, "keys": [{"id", "created_at", "key"}]}`.
Whoever can write the database but not read this file cannot forge a MAC. Created race-free
as the payload key file is (`core/key_ring.py` says how).

Rotation (`r2c audit rotate-key`) adds a new current key and keeps the older ones, because
each event names the key that signed it and verification needs them all.
"""

from __future__ import annotations

from pathlib import Path

from core.key_ring import Key as AuditKey
from core.key_ring import KeyFile, KeyRingError, RingKind, document
from core.key_ring import KeyRing as AuditKeyRing

__all__ = [
    "KEY_FILE_NAME",
    "KIND",
    "AuditKey",
    "AuditKeyError",
    "AuditKeyFile",
    "AuditKeyRing",
    "document",
    "key_file",
    "load_or_create_file",
    "read_file",
    "rotate_file",
]

KEY_FILE_NAME = "audit-hmac.key"
KEY_BYTES = 32
RESTORE_HINT = "restore it from a backup; without it the audit chain cannot be verified"


class AuditKeyError(KeyRingError):
    """The audit key ring is missing or damaged; the message names where, never a key."""

    error_type = "AuditKeyError"


KIND = RingKind(
    name="audit key",
    file_name=KEY_FILE_NAME,
    vault_path="r2c/audit-hmac-keys",
    id_prefix="audit-",
    key_bytes=KEY_BYTES,
    key_note="",
    error=AuditKeyError,
    restore_hint=RESTORE_HINT,
    keep_hint="old keys must stay to verify old events",
    missing_file_hint="the first audited change creates it; check R2C_HOME and R2C_AUDIT_KEY",
    missing_vault_hint="the first audited change creates it; check R2C_AUDIT_KEY",
    setting="R2C_AUDIT_KEY",
    unavailable_error=AuditKeyError,
)

key_file = KIND.key_file
read_file = KIND.read_file  # AuditKeyError when it is missing or damaged
load_or_create_file = KIND.load_or_create_file
rotate_file = KIND.rotate_file  # the older keys stay, since old events name them


class AuditKeyFile(KeyFile):
    """The ring of one home for a long-running process: created on first use, re-read when
    the file changes (a rotation by `r2c audit rotate-key` is seen at the next event)."""

    def __init__(self, home: Path) -> None:
        super().__init__(KIND, home, recheck_seconds=0)
