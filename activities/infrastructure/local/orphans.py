"""Processes of a target that its state does not know: left by a crash between starting a
process and recording it. Recognised by the `R2C_TARGET` variable each of them carries."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

log = logging.getLogger("r2c.infra.local")


def target_processes(target_dir: Path) -> list[int]:
    """Pids of live processes started for the target in `target_dir`."""
    marker = f"R2C_TARGET={target_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_orphans(target_dir: Path, known: set[int]) -> list[int]:
    """SIGKILL every process of the target that is not in `known`; returns their pids."""
    orphans = [pid for pid in target_processes(target_dir) if pid not in known]
    for pid in orphans:
        log.warning("killing an orphaned process of %s", target_dir, extra={"pid": pid})
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return orphans
