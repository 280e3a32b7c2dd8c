"""`r2c up` when things go wrong: a dying Temporal server, a stop during start-up, bad
settings, a busy port; and `up` against a Temporal server it did not start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx

from tests.e2e.up_stack import REPO_ROOT, UpStack, child_pids
from tests.support import wait_for_sync


def _nothing_left(stack: UpStack) -> None:
    left = wait_for_sync(stack.leftovers, lambda found: not found, within=15, what="no leftovers")
    assert left == {}


def test_a_dying_temporal_server_stops_everything(up_stack: UpStack) -> None:
    run = up_stack.start()
    (temporal,) = wait_for_sync(
        lambda: child_pids(up_stack.home, "server start-dev"), what="the Temporal server"
    )
    os.kill(temporal, signal.SIGKILL)
    assert run.proc.wait(60) == 1
    assert "error: the Temporal server exited" in run.output()
    _nothing_left(up_stack)


def test_a_stop_during_start_up_ends_it_cleanly(up_stack: UpStack) -> None:
    run = up_stack.launch()
    run.wait_for_output("starting Temporal server")
    assert run.stop(signal.SIGINT) == 0
    assert "readme-to-cicd orchestration is up" not in run.output()
    _nothing_left(up_stack)


def _up_once(stack: UpStack, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "up"],
        cwd=REPO_ROOT,
        env={**stack.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invalid_settings_name_the_variable(up_stack: UpStack) -> None:
    result = _up_once(up_stack, PORT="eighty", LOG_LEVEL="LOUD")
    assert result.returncode == 2
    assert "PORT: Input should be a valid integer" in result.stderr
    assert "LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in result.stderr
    _nothing_left(up_stack)


def test_a_busy_port_is_named(up_stack: UpStack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", up_stack.port))
        taken.listen()
        result = _up_once(up_stack)
    assert result.returncode == 1
    assert f"PORT={up_stack.port}" in result.stdout
    _nothing_left(up_stack)


def test_up_uses_an_existing_temporal_server(up_stack: UpStack, temporal_target: str) -> None:
    up_stack.env["TEMPORAL_ADDRESS"] = temporal_target
    run = up_stack.start()
    assert f"Temporal       {temporal_target}" in run.output()
    assert child_pids(up_stack.home, "server start-dev") == set()
    key = up_stack.admin_key_file.read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    started = httpx.post(
        f"{up_stack.base_url}/api/v1/orchestration/workflows",
        json={"type": "component-health-check", "input": {}},
        headers=headers,
    )
    assert started.status_code == 202, started.text
    url = f"{up_stack.base_url}/api/v1/orchestration/workflows/{started.json()['id']}"
    done = wait_for_sync(
        lambda: httpx.get(url, headers=headers).json(),
        lambda d: d["status"] == "completed",
        what="the health check to complete",
    )
    assert done["result"]["rounds_completed"] == 1
    assert run.stop(signal.SIGTERM) == 0
    _nothing_left(up_stack)
