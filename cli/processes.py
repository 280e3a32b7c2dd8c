"""Child processes of `r2c up`: started in their own session, stopped with SIGTERM then SIGKILL,
and tied to `up` by PR_SET_PDEATHSIG so that even a SIGKILLed `up` leaves nothing behind.

A child's output goes to our stdout, to a log file, or to both (`tee`): then `up` reads the
child's pipe without pause and writes each chunk of whole lines to the console and to the
rotated file, so a child that logs a lot never blocks on a full pipe."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from cli.log_files import RotatingLog, Rotation

_PR_SET_PDEATHSIG = 1
# One read from a child's pipe; a line longer than this is written in pieces.
READ_CHUNK = 64 * 1024
# How long a stopped child's last output may take to reach the console and its file.
DRAIN_GRACE = 5.0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One supervised process; its output goes to our stdout, or to a log file, or to both
    with the file rotated (`tee`)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_file: Path | None = None,
        tee: Rotation | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        if tee is not None:
            if log_file is None:
                raise ValueError("tee needs a log file")
            # Python children block-buffer a pipe; unbuffered, each line arrives as written.
            self.env["PYTHONUNBUFFERED"] = "1"
        self.log_file = log_file
        self.tee = tee
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.started_at = 0.0
        self._drain: asyncio.Task[None] | None = None

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
        if self.tee is not None:
            await self._start_teed(self.tee)
            return
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

    async def _start_teed(self, rotation: Rotation) -> None:
        assert self.log_file is not None
        sink = RotatingLog(self.log_file, rotation)
        self.started_at = time.monotonic()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            sink.close()
            raise
        assert self.proc.stdout is not None
        self._drain = asyncio.create_task(_drain(self.proc.stdout, sink))

    async def _drained(self) -> None:
        """Wait until the child's last output is written (a grandchild that kept the pipe
        open cannot hold us longer than DRAIN_GRACE)."""
        if self._drain is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._drain), DRAIN_GRACE)

    async def wait(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        await self._drained()
        return code

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
            code = await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            code = await self.proc.wait()
        await self._drained()
        if self._drain is not None:
            self._drain.cancel()
        return code


async def _drain(pipe: asyncio.StreamReader, sink: RotatingLog) -> None:
    """Copy `pipe` to our stdout and `sink` until its end, in whole lines (a partial last line
    waits for the rest, unless the buffer is full or the pipe ends)."""
    console = sys.stdout.buffer
    pending = b""
    try:
        while True:
            chunk = await pipe.read(READ_CHUNK)
            if not chunk:
                break
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut == 0 and len(pending) < READ_CHUNK:
                continue
            out, pending = (pending[:cut], pending[cut:]) if cut else (pending, b"")
            _write(console, sink, out)
        if pending:
            _write(console, sink, pending + b"\n")
    finally:
        sink.close()


def _write(console: BinaryIO, sink: RotatingLog, data: bytes) -> None:
    # The file first: it is what `r2c logs` reads, and a closed console must not lose it.
    try:
        sink.write(data)
        sink.failing = False
    except OSError as err:  # a full disk: the console still shows the child
        if not sink.failing:  # said once, not at every line until the disk has room again
            print(f"up: cannot write {sink.path}: {err.strerror}", file=sys.stderr, flush=True)
        sink.failing = True
    with contextlib.suppress(OSError, ValueError):
        console.write(data)
        console.flush()


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
