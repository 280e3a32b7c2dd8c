"""The payload key ring kept in Vault (`R2C_PAYLOAD_KEYS=vault`): one KV v2 value, never on disk.

The value is the same JSON document as the key file (`core/payload_keys.py`). Several processes
starting at once on a fresh Vault race to create it; KV v2 check-and-set decides, with no lock
server: the ring is written with `cas=0` (only if absent), so exactly one writer wins and the
others read the winner's ring. A rotation writes with `cas=<version read>` and, when another
writer came first, reads again and retries, so two rotations at once both keep their key.

A running process re-reads the ring every `RECHECK_SECONDS` in a background thread (the codec is
synchronous, and a Vault round trip must not stall the event loop on every payload), and at once
when it meets a payload under a key id it does not know, as the file ring does.
"""

from __future__ import annotations

import logging
import threading
import time

from core.errors import R2CError
from core.payload_keys import (
    KIND,
    RECHECK_SECONDS,
    KeyRing,
    PayloadKey,
    PayloadKeyFileError,
    PayloadKeysUnavailableError,
)
from core.secrets import CheckAndSetStore

log = logging.getLogger("r2c.payload_keys")

VAULT_KEY_PATH = KIND.vault_path


def unavailable(where: str, err: R2CError) -> PayloadKeysUnavailableError:
    return PayloadKeysUnavailableError(
        f"the payload keys (R2C_PAYLOAD_KEYS=vault) cannot be read from {where}: {err.message}",
        hint=f"{err.hint + '; ' if err.hint else ''}this process cannot encrypt or decrypt "
        "Temporal payloads without them. Set R2C_PAYLOAD_KEYS=file only if the ring was never "
        "in Vault: histories encrypted with Vault's keys need them",
    )


load_or_create = KIND.load_or_create_in_vault  # the ring and its version, made if absent
rotate = KIND.rotate_in_vault
read_ring = KIND.read_vault_ring  # PayloadKeyFileError if it is absent or damaged


class PayloadKeyVault:
    """The ring in Vault for a long-running process: a `KeySource` for the codec. Construction
    reads (or creates) the ring and raises PayloadKeysUnavailableError when Vault cannot be
    used, so a process without keys fails at start, saying why."""

    def __init__(
        self, store: CheckAndSetStore, where: str, recheck_seconds: float = RECHECK_SECONDS
    ) -> None:
        self._store = store
        self._where = where
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._refreshing = False
        try:
            self._ring, self._version = load_or_create(store, where)
        except PayloadKeyFileError:
            raise
        except R2CError as err:
            raise unavailable(where, err) from None
        self._checked = time.monotonic()

    def _reload(self) -> None:
        found = KIND.read_vault(self._store, self._where)
        if found is None:
            raise PayloadKeyFileError(
                f"the payload key ring in {self._where} has disappeared", hint=KIND.restore_hint
            )
        ring, version = found
        with self._lock:
            self._checked = time.monotonic()
            if version > self._version:
                self._ring, self._version = ring, version

    def _reload_in_background(self) -> None:
        try:
            self._reload()
        except R2CError as err:
            # The keys held stay valid (rotation never removes one): keep using them.
            log.warning("payload key ring not re-read from Vault: %s", err.message)
        finally:
            with self._lock:
                self._checked = time.monotonic()
                self._refreshing = False

    def ring(self) -> KeyRing:
        """The ring as of about `recheck_seconds` ago; a stale one starts a background re-read."""
        with self._lock:
            due = not self._refreshing and time.monotonic() - self._checked >= self._recheck
            if due:
                self._refreshing = True
        if due:
            threading.Thread(
                target=self._reload_in_background, name="payload-key-reload", daemon=True
            ).start()
        return self._ring

    def current(self) -> PayloadKey:
        return self.ring().current

    def find(self, key_id: str) -> PayloadKey | None:
        """The key `key_id`, re-reading Vault first if it is not known (a rotation made by
        another process since the last check). That read blocks, bounded by the Vault client's
        timeout; it happens once per rotation a process has not seen yet."""
        found = self.ring().find(key_id)
        if found is None:
            try:
                self._reload()
            except PayloadKeyFileError:
                raise
            except R2CError as err:
                raise unavailable(self._where, err) from None
            found = self._ring.find(key_id)
        return found
