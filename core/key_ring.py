"""A ring of secret keys kept outside the database: the key that is used now, and every older
one, by id. Two rings are built on it (`RingKind` says how they differ): the AES keys that
encrypt Temporal payloads (`core/payload_keys.py`) and the HMAC keys of the audit chain
(`core/audit_keys.py`).

Both stores keep one JSON document, `{"current": id, "keys": [{"id", "created_at", "key":
base64}]}`: a file in R2C_HOME (0600, in the 0700 home), or one KV v2 value in Vault.

The first process to need a key creates the ring, and the API and a worker often start at the
same moment. In the file store the ring is written complete to a private temporary file
(O_EXCL) which is then hard-linked to the final name: `link` fails if the name exists, so
exactly one process wins, and nobody can read a half-written ring; the losers read the
winner's file. In Vault, check-and-set decides with no lock server: the ring is written with
`cas=0` (only if absent), so exactly one writer wins and the others read the winner's ring.

Rotation adds a new current key and keeps every older one: what an older key wrote (an
encrypted history, a signed audit event) must stay readable. File rotations take a lock, so two
at once cannot drop each other's key; Vault rotations write with `cas=<version read>` and, when
another writer came first, read again and retry, so two rotations at once both keep their key.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import R2CError
from core.secrets import CheckAndSetConflictError, CheckAndSetStore, VersionedValue
from core.settings import Settings
from core.vault import UnavailableSecretStore, VaultSecretStore, open_secret_store

MAX_KEYS = 1000  # a rotation a day for years; a ring larger than this is not ours
# Each Vault write loses only to a writer that succeeded, so this many losses in a row means
# something keeps rewriting the ring; stop rather than spin.
MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class Key:
    """One key of a ring. `secret` is the key material: never print, log or send it."""

    id: str
    created_at: datetime
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class KeyRing:
    """The key new data is protected with, and every key that protected older data."""

    current_id: str
    keys: tuple[Key, ...]

    @property
    def current(self) -> Key:
        found = self.find(self.current_id)
        assert found is not None  # checked when the ring is read
        return found

    def find(self, key_id: str) -> Key | None:
        return next((k for k in self.keys if k.id == key_id), None)

    def secrets(self) -> dict[str, bytes]:
        return {k.id: k.secret for k in self.keys}


def document(ring: KeyRing) -> dict[str, Any]:
    """The ring as the JSON document both stores keep (the file, or a Vault KV value)."""
    keys = [
        {
            "id": k.id,
            "created_at": k.created_at.isoformat(),
            "key": base64.b64encode(k.secret).decode(),
        }
        for k in ring.keys
    ]
    return {"current": ring.current_id, "keys": keys}


class KeyRingError(R2CError):
    """A ring is missing, damaged or full; the message names where it is, never a key."""

    http_status = 503  # the server's own state is at fault, not the request


@dataclass(frozen=True)
class RingKind:
    """One kind of ring: where it is kept, the size and id of its keys, how its errors read;
    and the operations of both stores on it."""

    name: str  # how messages name it: "payload key", "audit key"
    file_name: str  # under R2C_HOME
    vault_path: str  # under the KV v2 mount
    id_prefix: str  # before the time in a key id
    key_bytes: int
    key_note: str  # said after the key size when a key has another
    error: type[KeyRingError]  # raised when the ring is missing, damaged or full
    restore_hint: str  # why a lost ring matters
    keep_hint: str  # why rotation must keep the old keys
    missing_file_hint: str
    missing_vault_hint: str
    setting: str  # the setting that keeps the ring in Vault: R2C_PAYLOAD_KEYS=vault
    unavailable_error: type[R2CError]  # raised when that Vault cannot be used

    def new_key(self, now: datetime | None = None) -> Key:
        """A fresh random key; its id says when it was made, plus randomness for uniqueness."""
        created = (now or datetime.now(UTC)).replace(microsecond=0)
        key_id = f"{self.id_prefix}{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        return Key(key_id, created, secrets.token_bytes(self.key_bytes))

    def _first_ring(self) -> KeyRing:
        first = self.new_key()
        return KeyRing(first.id, (first,))

    def _with_new_key(self, ring: KeyRing, where: str) -> KeyRing:
        """`ring` with a fresh current key, every older one kept; refused when it is full."""
        if len(ring.keys) >= MAX_KEYS:
            raise self.error(
                f"the {self.name} {where} already holds {MAX_KEYS} keys",
                hint=f"rotate less often; {self.keep_hint}",
            )
        fresh = self.new_key()
        return KeyRing(fresh.id, (*ring.keys, fresh))

    def parse(self, where: str, doc: Any) -> KeyRing:
        """The ring in `doc`, read from `where` (\"file PATH\", \"ring in Vault at ...\"): checked
        whole, so a damaged ring is refused, naming where it is and never a key."""

        def bad(why: str) -> KeyRingError:
            return self.error(
                f"the {self.name} {where} is not usable: {why}", hint=self.restore_hint
            )

        try:
            current = doc["current"]
            entries = doc["keys"]
            if not isinstance(current, str) or not isinstance(entries, list):
                raise bad("`current` must be a key id and `keys` a list")
            if not 0 < len(entries) <= MAX_KEYS:
                raise bad(f"it must hold between 1 and {MAX_KEYS} keys")
            keys = tuple(
                Key(
                    str(e["id"]),
                    datetime.fromisoformat(e["created_at"]),
                    base64.b64decode(e["key"], validate=True),
                )
                for e in entries
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as err:
            # The message of a decoding error can quote its input: name only its self.
            raise bad(f"unreadable ({type(err).__name__})") from None
        if any(len(k.secret) != self.key_bytes for k in keys):
            raise bad(f"every key must be {self.key_bytes} bytes{self.key_note}")
        if len({k.id for k in keys}) != len(keys):
            raise bad("two keys share an id")
        ring = KeyRing(current, keys)
        if ring.find(current) is None:
            raise bad(f"the current key {current!r} is not among its keys")
        return ring

    # The file store, under R2C_HOME.

    def key_file(self, home: Path) -> Path:
        return home / self.file_name

    def read_file(self, home: Path) -> KeyRing:
        """The ring in `home`; `self.error` if it is missing or damaged."""
        path = self.key_file(home)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise self.error(
                f"there is no {self.name} file at {path}", hint=self.missing_file_hint
            ) from None
        try:
            doc = json.loads(raw)
        except ValueError as err:
            # The message of a decoding error can quote its input: name only its self.
            raise self.error(
                f"the {self.name} file {path} is not usable: unreadable ({type(err).__name__})",
                hint=self.restore_hint,
            ) from None
        return self.parse(f"file {path}", doc)

    def _write_private_temp(self, home: Path, ring: KeyRing) -> Path:
        """`ring` in a new 0600 file beside the key file, flushed to disk."""
        temp = home / f".{self.file_name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, json.dumps(document(ring), indent=1).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return temp

    def load_or_create_file(self, home: Path) -> KeyRing:
        """The ring of `home`, made with one fresh key if there is none yet (race-free)."""
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.key_file(home)
        if not path.exists():
            ring = self._first_ring()
            temp = self._write_private_temp(home, ring)
            try:
                os.link(temp, path)
                return ring
            except FileExistsError:
                pass  # another process won: its ring is the one
            finally:
                temp.unlink()
        return self.read_file(home)

    @contextmanager
    def _rotation_lock(self, home: Path) -> Iterator[None]:
        """Serialises rotations, so two at once cannot drop each other's key."""
        fd = os.open(home / f".{self.file_name}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def rotate_file(self, home: Path) -> KeyRing:
        """Add a fresh key and make it current; the older keys stay."""
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._rotation_lock(home):
            path = self.key_file(home)
            if not path.exists():
                return self.load_or_create_file(home)  # a first key is as new as a rotation makes
            rotated = self._with_new_key(self.read_file(home), f"file {path}")
            temp = self._write_private_temp(home, rotated)
            os.replace(temp, path)  # readers see the old ring or the new, never a part
            return rotated

    # The Vault store: one KV v2 value, never on disk.

    def open_vault(self, settings: Settings) -> tuple[CheckAndSetStore, str]:
        """The configured Vault, and how messages name the ring's place in it."""
        store = open_secret_store(settings)
        if isinstance(store, UnavailableSecretStore):
            raise self.unavailable_error(
                f"the {self.name}s ({self.setting}=vault) cannot be read: {store.message}",
                hint=f"{store.hint}; or set {self.setting}=file to keep them under R2C_HOME",
            )
        assert isinstance(store, VaultSecretStore)  # the only other store open_secret_store makes
        return store, f"Vault ({settings.vault_kv_mount}/{self.vault_path}) at {store.url}"

    def read_vault(self, store: CheckAndSetStore, where: str) -> tuple[KeyRing, int] | None:
        """The ring in Vault and its version; None when there is none."""
        found = store.read_versioned(self.vault_path)
        return None if found is None else (self._parse_found(where, found), found.version)

    def _parse_found(self, where: str, found: VersionedValue) -> KeyRing:
        return self.parse(f"ring in {where}", found.value)

    def read_vault_ring(self, store: CheckAndSetStore, where: str) -> KeyRing:
        """The ring in Vault; `self.error` if it is absent or damaged."""
        found = self.read_vault(store, where)
        if found is None:
            raise self.error(
                f"there is no {self.name} ring in {where}", hint=self.missing_vault_hint
            )
        return found[0]

    def load_or_create_in_vault(self, store: CheckAndSetStore, where: str) -> tuple[KeyRing, int]:
        """The ring in Vault and its version, created with one fresh key if absent (race-free)."""
        for _ in range(MAX_ATTEMPTS):
            found = self.read_vault(store, where)
            if found is not None:
                return found
            ring = self._first_ring()
            try:
                return ring, store.write_if_version(self.vault_path, document(ring), 0)
            except CheckAndSetConflictError:
                continue  # another process created it first: its ring is the one
        raise self._too_busy(where)

    def rotate_in_vault(self, store: CheckAndSetStore, where: str) -> KeyRing:
        """Add a fresh current key to the ring in Vault, keeping every older one; retried on a
        check-and-set conflict, so concurrent rotations each add their key."""
        for _ in range(MAX_ATTEMPTS):
            found = store.read_versioned(self.vault_path)
            if found is None:
                # A first key is as new as a rotation makes.
                return self.load_or_create_in_vault(store, where)[0]
            rotated = self._with_new_key(self._parse_found(where, found), f"ring in {where}")
            try:
                store.write_if_version(self.vault_path, document(rotated), found.version)
                return rotated
            except CheckAndSetConflictError:
                continue  # rotated or created meanwhile: add our key to the newer ring
        raise self._too_busy(where)

    def _too_busy(self, where: str) -> KeyRingError:
        return self.error(
            f"the {self.name} ring in {where} changed {MAX_ATTEMPTS} times while being written",
            hint="something keeps rewriting it; find what, then retry",
        )


class KeyFile:
    """The ring of one home for a long-running process: created on first use, then re-read
    when the file changes, looked at (a stat, not a read) at most every `recheck_seconds`."""

    def __init__(self, kind: RingKind, home: Path, recheck_seconds: float) -> None:
        self._kind = kind
        self._home = home
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._ring: KeyRing | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._kind.key_file(self._home).stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_ino

    def _reload_if_changed(self) -> KeyRing:
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._file_stamp()
            if self._ring is None:
                self._ring = self._kind.load_or_create_file(self._home)
                self._stamp = self._file_stamp()
            elif stamp != self._stamp:
                # A ring once held is never made anew: a missing file is refused, naming it,
                # since a fresh key would hide the loss of every older one.
                self._ring = self._kind.read_file(self._home)
                self._stamp = stamp
            return self._ring

    def ring(self, fresh: bool = False) -> KeyRing:
        """The ring as of at most `recheck_seconds` ago; `fresh`: as of now."""
        ring = self._ring
        if ring is None or fresh or time.monotonic() - self._checked >= self._recheck:
            return self._reload_if_changed()
        return ring

    def current(self) -> Key:
        return self.ring().current

    def find(self, key_id: str) -> Key | None:
        """The key `key_id`, re-reading the file first if it is not known (a rotation made by
        another process since the last check)."""
        found = self.ring().find(key_id)
        if found is None:
            found = self.ring(fresh=True).find(key_id)
        return found
