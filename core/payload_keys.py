"""The payload key ring: AES-256 keys that encrypt Temporal payloads, by id.

The embedded default keeps the ring in one file, `R2C_HOME/payload-keys.json` (0600, in the
0700 home): `{"current": id, "keys": [{"id", "created_at", "key": base64}]}`. A development
convenience, as the admin key file is: whoever reads the home reads every history.

The first process to need a key on a fresh home creates the file, race-free (`core/key_ring.py`
says how). Rotation adds a new current key and keeps every older one, so histories written
before it stay readable. A running process notices a rotation within `RECHECK_SECONDS` (and at
once when it meets a payload under a key it does not know), without a restart.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import DependencyUnavailableError
from core.key_ring import Key as PayloadKey
from core.key_ring import KeyFile, KeyRing, KeyRingError, RingKind

__all__ = [
    "KEY_FILE_NAME",
    "KIND",
    "RECHECK_SECONDS",
    "KeyRing",
    "PayloadKey",
    "PayloadKeyFile",
    "PayloadKeyFileError",
    "load_or_create",
    "read_ring",
    "rotate",
]

KEY_FILE_NAME = "payload-keys.json"
KEY_BYTES = 32  # AES-256
RECHECK_SECONDS = 5.0
RESTORE_HINT = "restore it from a backup; without its keys, encrypted histories cannot be read"


class PayloadKeyFileError(KeyRingError):
    """The key file is missing or cannot be used; the message names the file, never a key."""

    error_type = "PayloadKeyFileError"


class PayloadKeysUnavailableError(DependencyUnavailableError):
    """The key ring cannot be read from Vault: without it a process can neither encrypt nor
    decrypt a Temporal payload. The message names Vault and R2C_PAYLOAD_KEYS, never a key."""

    error_type = "PayloadKeysUnavailableError"


KIND = RingKind(
    name="payload key",
    file_name=KEY_FILE_NAME,
    vault_path="r2c/payload-keys",
    id_prefix="",
    key_bytes=KEY_BYTES,
    key_note=" (AES-256)",
    error=PayloadKeyFileError,
    restore_hint=RESTORE_HINT,
    keep_hint="old keys must stay while histories use them",
    missing_file_hint="start the API or a worker once (they create it), or check R2C_HOME",
    missing_vault_hint="start the API or a worker once with R2C_PAYLOAD_KEYS=vault "
    "(they create it)",
    setting="R2C_PAYLOAD_KEYS",
    unavailable_error=PayloadKeysUnavailableError,
)

read_ring = KIND.read_file  # PayloadKeyFileError if it is missing or damaged
load_or_create = KIND.load_or_create_file
rotate = KIND.rotate_file  # the older keys stay, so old payloads still decrypt


class PayloadKeyFile(KeyFile):
    """The ring of one home, re-read when the file changes, for a long-running process. Made
    at construction, so a process that cannot have keys fails at start, saying why."""

    def __init__(self, home: Path, recheck_seconds: float = RECHECK_SECONDS) -> None:
        super().__init__(KIND, home, recheck_seconds)
        self.ring()
