"""The audit chain's HMAC keys, kept outside the database (`R2C_AUDIT_KEY`).

`file` (the default): `R2C_HOME/audit-hmac.key`, 0600 in the 0700 home, created by the first
process that writes an audit event: `{"current": id, "keys": [{"id", "created_at", "key"}]}`.
Whoever can write the database but not read this file cannot forge a MAC. Created race-free
as the payload key file is: written whole to a private temporary file, then hard-linked to the
final name (only one process wins; the others read its file).

Rotation (`r2c audit rotate-key`) adds a new current key and keeps the older ones, because
each event names the key that signed it and verification needs them all.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import R2CError

KEY_FILE_NAME = "audit-hmac.key"
KEY_BYTES = 32
MAX_KEYS = 1000
RESTORE_HINT = "restore it from a backup; without it the audit chain cannot be verified"


class AuditKeyError(R2CError):
    """The audit key ring is missing or damaged; the message names where, never a key."""

    error_type = "AuditKeyError"
    http_status = 503  # the server's own state is at fault, not the request


@dataclass(frozen=True)
class AuditKey:
    """One HMAC key. `secret` is key material: never print, log or send it."""

    id: str
    created_at: datetime
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class AuditKeyRing:
    """The key new events are signed with, and every key that signed one."""

    current_id: str
    keys: tuple[AuditKey, ...]

    @property
    def current(self) -> AuditKey:
        return next(k for k in self.keys if k.id == self.current_id)

    def secrets(self) -> dict[str, bytes]:
        return {k.id: k.secret for k in self.keys}


def new_key() -> AuditKey:
    created = datetime.now(UTC).replace(microsecond=0)
    return AuditKey(
        f"audit-{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}",
        created,
        secrets.token_bytes(KEY_BYTES),
    )


def document(ring: AuditKeyRing) -> dict[str, Any]:
    """The ring as the JSON document its store keeps."""
    keys = [
        {
            "id": k.id,
            "created_at": k.created_at.isoformat(),
            "key": base64.b64encode(k.secret).decode(),
        }
        for k in ring.keys
    ]
    return {"current": ring.current_id, "keys": keys}


def parse(where: str, doc: Any) -> AuditKeyRing:
    """The ring in `doc`, checked whole; a damaged ring is refused naming `where`."""

    def bad(why: str) -> AuditKeyError:
        return AuditKeyError(f"the audit key {where} is not usable: {why}", hint=RESTORE_HINT)

    try:
        current = doc["current"]
        entries = doc["keys"]
        if not isinstance(current, str) or not isinstance(entries, list):
            raise bad("`current` must be a key id and `keys` a list")
        if not 0 < len(entries) <= MAX_KEYS:
            raise bad(f"it must hold between 1 and {MAX_KEYS} keys")
        keys = tuple(
            AuditKey(
                str(e["id"]),
                datetime.fromisoformat(e["created_at"]),
                base64.b64decode(e["key"], validate=True),
            )
            for e in entries
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        # A decoding error's message can quote its input: name only its kind.
        raise bad(f"unreadable ({type(err).__name__})") from None
    if any(len(k.secret) != KEY_BYTES for k in keys):
        raise bad(f"every key must be {KEY_BYTES} bytes")
    if len({k.id for k in keys}) != len(keys) or current not in {k.id for k in keys}:
        raise bad("its key ids are duplicated, or the current one is not among them")
    return AuditKeyRing(current, keys)


def key_file(home: Path) -> Path:
    return home / KEY_FILE_NAME


def read_file(home: Path) -> AuditKeyRing:
    """The ring in `home`; AuditKeyError when it is missing or damaged."""
    path = key_file(home)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AuditKeyError(
            f"there is no audit key file at {path}",
            hint="the first audited change creates it; check R2C_HOME and R2C_AUDIT_KEY",
        ) from None
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise AuditKeyError(
            f"the audit key file {path} is not usable: unreadable ({type(err).__name__})",
            hint=RESTORE_HINT,
        ) from None
    return parse(f"file {path}", doc)


def _write_private(home: Path, ring: AuditKeyRing) -> Path:
    temp = home / f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, json.dumps(document(ring), indent=1).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return temp


def load_or_create_file(home: Path) -> AuditKeyRing:
    """The ring of `home`, made with one fresh key if there is none yet."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = key_file(home)
    if not path.exists():
        ring = AuditKeyRing((first := new_key()).id, (first,))
        temp = _write_private(home, ring)
        try:
            os.link(temp, path)
            return ring
        except FileExistsError:
            pass  # another process won: its ring is the one
        finally:
            temp.unlink()
    return read_file(home)


def rotate_file(home: Path) -> AuditKeyRing:
    """A fresh current key; the older ones stay, since old events name them."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(home / f".{KEY_FILE_NAME}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two rotations at once must not drop a key
        ring = load_or_create_file(home)
        if len(ring.keys) >= MAX_KEYS:
            raise AuditKeyError(
                f"the audit key file holds {MAX_KEYS} keys already",
                hint="rotate less often; old keys must stay to verify old events",
            )
        fresh = new_key()
        rotated = AuditKeyRing(fresh.id, (*ring.keys, fresh))
        os.replace(_write_private(home, rotated), key_file(home))
        return rotated
    finally:
        os.close(fd)


class AuditKeyFile:
    """The ring of one home for a long-running process: created on first use, re-read when
    the file changes (a rotation by `r2c audit rotate-key` is seen at the next event)."""

    def __init__(self, home: Path) -> None:
        self._home = home
        self._ring: AuditKeyRing | None = None
        self._stamp: tuple[int, int] | None = None

    def ring(self, fresh: bool = False) -> AuditKeyRing:  # noqa: ARG002 - always current
        try:
            stat = key_file(self._home).stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_ino)
        except FileNotFoundError:
            stamp = None
        if self._ring is None or stamp != self._stamp:
            self._ring = load_or_create_file(self._home)
            stat = key_file(self._home).stat()
            self._stamp = (stat.st_mtime_ns, stat.st_ino)
        return self._ring
