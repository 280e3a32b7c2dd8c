"""The payload key ring: AES-256 keys that encrypt Temporal payloads, by id.

The embedded default keeps the ring in one file, `R2C_HOME/payload-keys.json` (0600, in the
0700 home): `{"current": id, "keys": [{"id", "created_at", "key": base64}]}`. A development
convenience, as the admin key file is: whoever reads the home reads every history.

The first process to need a key on a fresh home creates the file, and the API and a worker often
start at the same moment. The ring is written complete to a private temporary file (O_EXCL)
which is then hard-linked to the final name: `link` fails if the name exists, so exactly one
process wins, and nobody can read a half-written ring; the losers read the winner's file.

Rotation adds a new current key and keeps every older one, so histories written before it
stay readable. A running process notices a rotation within `RECHECK_SECONDS` (and at once when
it meets a payload under a key it does not know), without a restart.
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

KEY_FILE_NAME = "payload-keys.json"
KEY_BYTES = 32  # AES-256
RECHECK_SECONDS = 5.0
MAX_KEYS = 1000  # a rotation a day for years; a ring larger than this is not ours
RESTORE_HINT = "restore it from a backup; without its keys, encrypted histories cannot be read"


class PayloadKeyFileError(R2CError):
    """The key file is missing or cannot be used; the message names the file, never a key."""

    error_type = "PayloadKeyFileError"
    http_status = 503  # the server's own state is at fault, not the request


@dataclass(frozen=True)
class PayloadKey:
    """One key of the ring. `secret` is the key material: never print, log or send it."""

    id: str
    created_at: datetime
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class KeyRing:
    """The key new payloads are encrypted with, and every key that can decrypt one."""

    current_id: str
    keys: tuple[PayloadKey, ...]

    @property
    def current(self) -> PayloadKey:
        found = self.find(self.current_id)
        assert found is not None  # checked when the ring is read
        return found

    def find(self, key_id: str) -> PayloadKey | None:
        return next((k for k in self.keys if k.id == key_id), None)


def new_key(now: datetime | None = None) -> PayloadKey:
    """A fresh random key; its id says when it was made, plus randomness for uniqueness."""
    created = (now or datetime.now(UTC)).replace(microsecond=0)
    key_id = f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    return PayloadKey(key_id, created, secrets.token_bytes(KEY_BYTES))


def key_file(home: Path) -> Path:
    return home / KEY_FILE_NAME


def ring_document(ring: KeyRing) -> dict[str, Any]:
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


def _dump(ring: KeyRing) -> bytes:
    return json.dumps(ring_document(ring), indent=1).encode() + b"\n"


def parse_ring_document(where: str, doc: Any) -> KeyRing:
    """The ring in `doc`, read from `where` (\"file PATH\", \"ring in Vault at ...\"): checked
    whole, so a damaged ring is refused, naming where it is and never a key."""

    def bad(why: str) -> PayloadKeyFileError:
        return PayloadKeyFileError(
            f"the payload key {where} is not usable: {why}",
            hint=RESTORE_HINT,
        )

    try:
        current = doc["current"]
        entries = doc["keys"]
        if not isinstance(current, str) or not isinstance(entries, list):
            raise bad("`current` must be a key id and `keys` a list")
        if not 0 < len(entries) <= MAX_KEYS:
            raise bad(f"it must hold between 1 and {MAX_KEYS} keys")
        keys = tuple(
            PayloadKey(
                str(e["id"]),
                datetime.fromisoformat(e["created_at"]),
                base64.b64decode(e["key"], validate=True),
            )
            for e in entries
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        # The message of a decoding error can quote its input: name only its kind.
        raise bad(f"unreadable ({type(err).__name__})") from None
    if any(len(k.secret) != KEY_BYTES for k in keys):
        raise bad(f"every key must be {KEY_BYTES} bytes (AES-256)")
    if len({k.id for k in keys}) != len(keys):
        raise bad("two keys share an id")
    ring = KeyRing(current, keys)
    if ring.find(current) is None:
        raise bad(f"the current key {current!r} is not among its keys")
    return ring


def _parse(path: Path, raw: bytes) -> KeyRing:
    try:
        doc = json.loads(raw)
    except ValueError as err:
        # The message of a decoding error can quote its input: name only its kind.
        raise PayloadKeyFileError(
            f"the payload key file {path} is not usable: unreadable ({type(err).__name__})",
            hint=RESTORE_HINT,
        ) from None
    return parse_ring_document(f"file {path}", doc)


def read_ring(home: Path) -> KeyRing:
    """The ring in `home`; PayloadKeyFileError if it is missing or damaged."""
    path = key_file(home)
    try:
        return _parse(path, path.read_bytes())
    except FileNotFoundError:
        raise PayloadKeyFileError(
            f"there is no payload key file at {path}",
            hint="start the API or a worker once (they create it), or check R2C_HOME",
        ) from None


def _write_private_temp(home: Path, data: bytes) -> Path:
    """`data` in a new 0600 file beside the key file, flushed to disk."""
    temp = home / f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return temp


def load_or_create(home: Path) -> KeyRing:
    """The ring of `home`, made with one fresh key if there is none yet (race-free, see above)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = key_file(home)
    if not path.exists():
        ring = KeyRing((first := new_key()).id, (first,))
        temp = _write_private_temp(home, _dump(ring))
        try:
            os.link(temp, path)
            return ring
        except FileExistsError:
            pass  # another process won: its ring is the one
        finally:
            temp.unlink()
    return read_ring(home)


@contextmanager
def _rotation_lock(home: Path) -> Iterator[None]:
    """Serialises rotations, so two at once cannot drop each other's key."""
    fd = os.open(home / f".{KEY_FILE_NAME}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def rotate(home: Path) -> KeyRing:
    """Add a fresh key and make it current; the older keys stay, so old payloads still decrypt."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _rotation_lock(home):
        if not key_file(home).exists():
            return load_or_create(home)  # a first key is as new as a rotation makes
        ring = read_ring(home)
        if len(ring.keys) >= MAX_KEYS:
            raise PayloadKeyFileError(
                f"the payload key file {key_file(home)} already holds {MAX_KEYS} keys",
                hint="rotate less often; old keys must stay while histories use them",
            )
        fresh = new_key()
        rotated = KeyRing(fresh.id, (*ring.keys, fresh))
        temp = _write_private_temp(home, _dump(rotated))
        os.replace(temp, key_file(home))  # readers see the old ring or the new, never a part
        return rotated


class PayloadKeyFile:
    """The ring of one home, re-read when the file changes, for a long-running process."""

    def __init__(self, home: Path, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._home = home
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._ring = load_or_create(home)
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()

    def _file_stamp(self) -> tuple[int, int]:
        stat = key_file(self._home).stat()
        return stat.st_mtime_ns, stat.st_ino

    def _reload_if_changed(self) -> None:
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._ring = read_ring(self._home)
                self._stamp = stamp

    def ring(self) -> KeyRing:
        """The ring as of at most `recheck_seconds` ago (a stat, not a read, when unchanged)."""
        if time.monotonic() - self._checked >= self._recheck:
            self._reload_if_changed()
        return self._ring

    def current(self) -> PayloadKey:
        return self.ring().current

    def find(self, key_id: str) -> PayloadKey | None:
        """The key `key_id`, re-reading the file first if it is not known (a rotation made by
        another process since the last check)."""
        found = self.ring().find(key_id)
        if found is None:
            self._reload_if_changed()
            found = self._ring.find(key_id)
        return found
