"""`r2c up` keeps each process's log in R2C_HOME/logs as well as on the console, and
`r2c logs` shows them; a SIGKILLed `up` still takes its children (whose output it was
reading) with it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

from tests.e2e.up_stack import REPO_ROOT, UpStack, child_pids, pid_alive
from tests.support import wait_for_sync


def r2c_logs(stack: UpStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "logs", *args],
        cwd=REPO_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_up_writes_each_process_log_to_a_file_that_r2c_logs_shows(up_stack: UpStack) -> None:
    up_stack.env.update(R2C_LOG_MAX_BYTES="65536", R2C_LOG_BACKUPS="2")
    run = up_stack.start()
    logs = up_stack.home / "logs"
    api_log, worker_log = logs / "api.log", logs / "worker.log"
    for path in (api_log, worker_log):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # The API's start-up line: in its file, on the console of `up`, and through `r2c logs`.
    startup = [
        json.loads(line) for line in api_log.read_text().splitlines() if "api listening" in line
    ]
    assert startup and startup[0]["process"] == "api" and startup[0]["port"] == up_stack.port
    assert "api listening" in run.output()
    assert f"logs           {logs} (r2c logs" in run.output()
    shown = r2c_logs(up_stack, "api")
    assert shown.returncode == 0, shown.stderr
    assert "api listening" in shown.stdout
    assert "worker" in worker_log.read_text()
    listed = r2c_logs(up_stack)
    assert {"api", "worker", "temporal", "openbao"} <= set(listed.stdout.split()), listed

    # Killed outright, `up` cannot stop its children; PR_SET_PDEATHSIG does.
    services = child_pids(up_stack.home, "-m cli api") | child_pids(up_stack.home, "-m cli worker")
    assert len(services) == 2
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait(10)
    wait_for_sync(
        lambda: {pid for pid in services if pid_alive(pid)},
        lambda alive: not alive,
        within=30,
        what="the API and worker gone with `up`",
    )
