"""Child processes of `r2c up`: started in their own session, stopped with SIGTERM then SIGKILL,
and tied to `up` by PR_SET_PDEATHSIG so that even a SIGKILLed `up` leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One supervised process; its output goes to our stdout, or to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_file: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_file = log_file
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.started_at = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def exit_code(self) -> int | None:
        return self.proc.returncode if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        out = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        self.started_at = time.monotonic()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT if out is not None else None,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            if out is not None:
                out.close()

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns the exit code."""
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            return await self.proc.wait()


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# Below Linux's ephemeral range (32768-60999), which the kernel also hands out as the local
# port of outgoing connections: a port picked there can be taken by one before the server that
# asked binds it. Apart from the local provider's range (20000-29999) too.
FREE_PORT_RANGE = (10000, 19999)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a server about to start (not the kernel's choice)."""
    for _ in range(1000):
        port = random.randint(*FREE_PORT_RANGE)
        if not port_in_use(host, port):
            return port
    raise OSError(f"no free port in {FREE_PORT_RANGE}")


def environ_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env
