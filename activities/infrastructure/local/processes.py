"""Detached processes: started in their own session so they outlive the worker, recognised
again after a restart by pid *and* start time (a recycled pid is not our process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses: split after its last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # a zombie has exited; only its exit status remains
        return None
    return int(fields[19])


def alive(pid: int, ticks: int) -> bool:
    return start_ticks(pid) == ticks


def start_detached(
    argv: Sequence[str], env: Mapping[str, str], cwd: str | None, log_file: Path
) -> tuple[int, int]:
    """Start a process in a new session with its output appended to `log_file`.

    posix_spawn rather than subprocess.Popen: no Popen object stays behind to complain at
    exit about a child that is meant to outlive us.
    """
    log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    args = list(argv)
    if cwd:  # posix_spawn cannot change directory before exec: a shell does it
        args = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd, *args]
    pid = os.posix_spawnp(
        args[0],
        args,
        dict(env),
        setsid=True,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            # Logs may hold what the process prints of its secrets: its user's only.
            (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
    )
    _children.add(pid)
    ticks = start_ticks(pid)
    if ticks is None:  # it died at once; the caller reads the log
        return pid, -1
    return pid, ticks


# Processes this process started: reaped now and then so that exited ones do not linger as
# zombies (those started by an earlier worker were adopted and are reaped by init).
_children: set[int] = set()


def reap() -> None:
    for pid in list(_children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _children.discard(pid)


async def stop(pid: int, ticks: int, grace: float = 10.0) -> bool:
    """SIGTERM the process group, SIGKILL it after `grace` s; True if it had to be killed."""
    if not alive(pid, ticks):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while loop.time() < deadline:
        reap()
        if not alive(pid, ticks):
            return False
        await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    while alive(pid, ticks):
        reap()
        await asyncio.sleep(0.02)
    return True


def tail(log_file: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
