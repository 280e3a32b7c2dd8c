"""The real `r2c up` as a subprocess, and the tools to watch it and its children.

Every process of one stack is found in /proc by the stack's unique R2C_HOME path: `up` passes
its environment, with R2C_HOME, to every child, and the Temporal server also has its db path,
which lies in R2C_HOME, on its command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from cli.processes import free_port, port_in_use

REPO_ROOT = Path(__file__).resolve().parents[2]
BANNER = "readme-to-cicd orchestration is up"
START_WITHIN = 90.0  # `up` itself gives up after 60 s of waiting for the worker and the API
STOP_WITHIN = 60.0  # `up` gives each of its three children 15 s to stop


def listen_ports(count: int) -> list[int]:
    """`count` distinct free ports for the servers of a stack (see `free_port` for why these
    are not the kernel's choice: `up` is stopped and started again on the same ports)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def vault_port() -> int:
    """A free port for the embedded OpenBao whose next port (its cluster port) is free too."""
    while True:
        port = free_port()
        if not port_in_use("127.0.0.1", port + 1):
            return port


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process is gone, or is not ours to read
        return b""


def processes_of(home: Path) -> dict[int, str]:
    """Every live process (but this one) whose environment or command line names `home`,
    by pid, with its command line."""
    needles = {os.fsencode(str(home)), os.fsencode(str(home.resolve()))}
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        cmdline = _read(entry / "cmdline")
        environ = _read(entry / "environ")
        if any(n in cmdline or n in environ for n in needles):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def child_pids(home: Path, command: str) -> set[int]:
    """Pids of the processes of this stack whose command line contains `command`,
    e.g. `-m cli worker`."""
    return {pid for pid, cmdline in processes_of(home).items() if command in cmdline}


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    if not stat:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")


@dataclass
class UpRun:
    """One `r2c up` process and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, within: float = 30.0) -> None:
        """Poll the output until it contains `text`; fail with the output if `up` exits."""
        deadline = time.monotonic() + within
        while text not in self.output():
            if self.proc.poll() is not None:
                pytest.fail(
                    f"`r2c up` exited with code {self.proc.returncode} before printing "
                    f"{text!r}; its output:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"`r2c up` did not print {text!r} within {within:.0f}s; its output:\n"
                    f"{self.output()}"
                )
            time.sleep(0.05)

    def stop(self, sig: signal.Signals, within: float = STOP_WITHIN) -> int:
        """Send `sig` to `up` and wait for it to exit; returns its exit code."""
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"`r2c up` did not exit within {within:.0f}s of {sig.name}; its output:\n"
                f"{self.output()}"
            )
        self.log_file.close()
        return code


@dataclass
class UpStack:
    """Where one test's `r2c up` keeps its state and listens, and every run of it so far."""

    home: Path
    env: dict[str, str]
    port: int
    runs: list[UpRun] = field(default_factory=list)
    up_args: list[str] = field(default_factory=list)  # options of `r2c up`, e.g. --tls

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_key_file(self) -> Path:
        return self.home / "admin.key"

    @property
    def temporal_db(self) -> Path:
        return self.home / "temporal.db"

    @property
    def headers(self) -> dict[str, str]:
        """The admin key `up` made, as a bearer header."""
        return {"Authorization": f"Bearer {self.admin_key_file.read_text().strip()}"}

    def register_demo(self) -> str:
        """`r2c demo register` against this stack's API; returns its output."""
        registered = subprocess.run(
            [sys.executable, "-m", "cli", "demo", "register", "--api", self.base_url],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert registered.returncode == 0, registered.stdout + registered.stderr
        return registered.stdout

    def start(self) -> UpRun:
        """Start `r2c up` and return once its banner is out."""
        run = self.launch()
        run.wait_for_output(BANNER, within=START_WITHIN)
        return run

    def launch(self) -> UpRun:
        """Start `r2c up` and return at once."""
        log = self.home.parent / f"up-{len(self.runs) + 1}.log"
        log_file = log.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", *self.up_args],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own session, like a terminal's foreground job: signals reach it only from us.
            start_new_session=True,
        )
        run = UpRun(proc, log, log_file)
        self.runs.append(run)
        return run

    def leftovers(self) -> dict[int, str]:
        """Processes of this stack still alive, by pid. The Temporal server's db path lies in
        home, so the server is found by its command line even without R2C_HOME."""
        return processes_of(self.home)

    def kill_everything(self) -> None:
        for run in self.runs:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait(10)
            run.log_file.close()
        # Children outlive a SIGKILLed `up` for as long as their PDEATHSIG SIGTERM takes.
        for pid in processes_of(self.home):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
