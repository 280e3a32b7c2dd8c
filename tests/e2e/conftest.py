"""The fixture of the end-to-end tests: one `r2c up` per test, on its own state and ports.

A test asks for `up_stack`, calls `start()` as often as it likes (every run uses the same
R2C_HOME and ports, so a second start is a restart), and drives the API over HTTP. Whatever
happens, the finalizer kills every process of the test's stack.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.up_stack import UpStack, listen_ports, vault_port


@pytest.fixture
def up_stack(tmp_path: Path, database_url: str | None) -> Iterator[UpStack]:
    """An `r2c up` ready to start on its own R2C_HOME, free ports and store; everything it
    started is killed at the end, whether the test passed or not."""
    home = (tmp_path / "home").resolve()
    port, metrics, worker_metrics, temporal, temporal_ui, temporal_metrics = listen_ports(6)
    vault = vault_port()
    env = dict(os.environ)
    # The embedded Temporal server and OpenBao, the store this test run picked, and the key
    # file only.
    for name in (
        "TEMPORAL_ADDRESS",
        "POSTGRES_URL",
        "R2C_ADMIN_API_KEY",
        "R2C_CONFIG_DIR",
        "VAULT_URL",
        "VAULT_TOKEN",
        "VAULT_ROLE_ID",
        "VAULT_SECRET_ID",
    ):
        env.pop(name, None)
    env.update(
        R2C_HOME=str(home),
        PORT=str(port),
        METRICS_PORT=str(metrics),
        R2C_WORKER_METRICS_PORT=str(worker_metrics),
        R2C_TEMPORAL_PORT=str(temporal),
        R2C_TEMPORAL_UI_PORT=str(temporal_ui),
        R2C_TEMPORAL_METRICS_PORT=str(temporal_metrics),
        R2C_VAULT_PORT=str(vault),
        R2C_ENV="development",
        LOG_LEVEL="INFO",
    )
    if database_url is not None:
        env["POSTGRES_URL"] = database_url
    stack = UpStack(home=home, env=env, port=port)
    try:
        yield stack
    finally:
        stack.kill_everything()
        # Shown by pytest only when the test failed.
        for run in stack.runs:
            print(f"----- {run.log.name} (exit code {run.proc.returncode}) -----")
            print(run.output()[-20_000:])
        temporal_log = home / "logs" / "temporal.log"
        if temporal_log.is_file():
            print("----- temporal.log (tail) -----")
            print(temporal_log.read_text(errors="replace")[-5_000:])
