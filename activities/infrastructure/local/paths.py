"""Paths the local provider builds from names, and the modes of what it writes.

Names reach the provider already validated (`core/models/names.py`), but they become folders
that are deleted recursively on retire: the provider checks again that every path it builds
from a name is one plain segment that stays under its root, so a name such as `../../x` or
`/` can never make it touch anything outside `R2C_HOME/infra`.

Everything written here may hold environment overrides, logs with secrets or the ports of
running services: folders are 0700 and files 0600 whatever the umask of the worker.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import InvalidInputError

DIR_MODE = 0o700
FILE_MODE = 0o600


def child(root: Path, *names: str) -> Path:
    """`root/names[0]/names[1]/...`, refused unless each name is one segment inside `root`."""
    path = root
    for name in names:
        if (
            not name
            or name in (".", "..")
            or "/" in name
            or "\\" in name
            or "\x00" in name
            or name != name.strip()
        ):
            raise InvalidInputError(
                f"{name!r} cannot name a folder of the local provider",
                hint="component, environment and slot names are lower-case letters, digits and -",
            )
        path = path / name
    # A symbolic link planted inside the root must not lead out of it either.
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise InvalidInputError(f"{path} leads outside {resolved_root}")
    return path


def private_dir(path: Path, root: Path) -> Path:
    """Create `path` (under `root`, root included) with every folder 0700; returns it."""
    chain = [path, *path.parents]
    if root not in chain:
        raise ValueError(f"{path} is not under {root}")
    root.parent.mkdir(parents=True, exist_ok=True)  # R2C_HOME itself is not ours to chmod
    for folder in reversed(chain[: chain.index(root) + 1]):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
        # mkdir's mode is masked by the umask, and a folder made by an older version was 0755.
        if folder.stat().st_mode & 0o777 != DIR_MODE:
            os.chmod(folder, DIR_MODE)
    return path


def private_file(path: Path) -> None:
    """Create `path` empty if missing, and make it 0600 in any case."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, in a file that is 0600 whatever the umask."""
    tmp = path.with_name(f"{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
