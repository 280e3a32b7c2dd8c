"""Processes of a target that its state does not know: left by a crash between starting a
process and recording it. Recognised by the `R2C_TARGET` variable each of them carries.

Every instance and router is started in a session of its own (setsid: session id = its pid),
and whatever it starts (`npm start`'s node, gunicorn's workers, the children of `sh -c`)
inherits both the session and `R2C_TARGET`. So a process is an orphan only when its session is
not the session of a process the state knows; a child of a serving instance never is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

log = logging.getLogger("r2c.infra.local")


def target_processes(target_dir: Path) -> list[int]:
    """Pids of live processes started for the target in `target_dir` (and their children)."""
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


def session_of(pid: int) -> int | None:
    """The session id of `pid`, None once it is gone."""
    try:
        return os.getsid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def kill_orphans(target_dir: Path, sessions: set[int]) -> list[int]:
    """SIGKILL every process of the target outside the known `sessions`; returns their pids.

    `sessions` are the pids of the instances and the router the state records (each leads
    its own session).
    """
    orphans = [
        pid
        for pid in target_processes(target_dir)
        if (sid := session_of(pid)) is not None and sid not in sessions
    ]
    for pid in orphans:
        log.warning("killing an orphaned process of %s", target_dir, extra={"pid": pid})
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return orphans
