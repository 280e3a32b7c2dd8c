"""The log files of `r2c up`'s processes: `R2C_HOME/logs/<process>.log`, rotated by size.

Rotation is numbered like logging's RotatingFileHandler (`api.log.1` is the newest old file,
`api.log.<backups>` the oldest), so `r2c logs` and any shipper find them the usual way. A
file is rotated only between lines, so a JSON line is never split across two files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

FILE_MODE = 0o600  # a log may hold what a process prints of its secrets


@dataclass(frozen=True)
class Rotation:
    """Rotate past `max_bytes`, keeping `backups` old files (0: truncate instead)."""

    max_bytes: int
    backups: int


def rotated(path: Path, index: int) -> Path:
    """`path` as the `index`-th old file (`api.log.1`, ...)."""
    return path.with_name(f"{path.name}.{index}")


class RotatingLog:
    """Appends whole lines to `path`, rotating it first when they would take it past the
    limit. Not thread-safe: one writer, on the event loop of `up`."""

    def __init__(self, path: Path, rotation: Rotation) -> None:
        self.path = path
        self.rotation = rotation
        self.failing = False  # the last write failed (the writer's caller says so once)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.path, flags, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        return fd

    def write(self, lines: bytes) -> None:
        """Append `lines` (whole lines, or a line cut at the reader's bound)."""
        if self._size and self._size + len(lines) > self.rotation.max_bytes:
            self._rotate()
        view = memoryview(lines)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(lines)

    def _rotate(self) -> None:
        os.close(self._fd)
        backups = self.rotation.backups
        if backups:
            rotated(self.path, backups).unlink(missing_ok=True)
            for index in range(backups - 1, 0, -1):
                older = rotated(self.path, index)
                if older.exists():
                    older.replace(rotated(self.path, index + 1))
            self.path.replace(rotated(self.path, 1))
        else:
            self.path.unlink(missing_ok=True)
        self._fd = self._open()
        self._size = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
