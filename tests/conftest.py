"""Shared fixtures: real servers (Temporal dev server, PostgreSQL) on free ports.

`R2C_TEST_DATABASE` picks the store the tests run against: `sqlite` (default) or
`postgresql` (a real server started here). Under `CI=true` a skipped test fails the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from temporalio.client import Client

from cli.processes import free_port
from cli.temporal_server import dev_server_argv, wait_until_serving
from core.settings import Settings
from core.temporal import connect
from tests.support import wait_for

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DATABASE = os.environ.get("R2C_TEST_DATABASE", "sqlite")


def need(condition: bool, reason: str) -> None:
    """Skip locally when a component is missing; in CI the same is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        reporter.write_line(f"FAILED: {skipped} test(s) skipped; CI allows none", red=True)
        session.exitstatus = 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass runs only the tests marked `store`: those whose subject is what the
    store keeps (audit, keys, configuration, policies, events, schedules, judgements), so that
    its SQL, constraints and transactions run on both stores. Every other test (deploying
    processes and routers, the judge, the CLI, the dashboard) reaches the store through the
    same code and would repeat the default pass, and CI has 90 minutes for both."""
    if DATABASE != "postgresql":
        return
    kept, dropped = [], []
    for item in items:
        (kept if item.get_closest_marker("store") is not None else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)
    return versions[-1] if versions else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL server; yields its admin URL (database `postgres`)."""
    pg_bin = _pg_bin()
    need(
        pg_bin is not None,
        "PostgreSQL server binaries are not installed (apt-get install postgresql)",
    )
    assert pg_bin is not None
    base = Path(tempfile.mkdtemp(prefix="r2c-pg-"))
    port = free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    subprocess.run(
        [
            *run_as,
            str(pg_bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run_as,
            str(pg_bin / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=300",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str | None:
    """A fresh, empty PostgreSQL database per test when testing PostgreSQL, else None (SQLite)."""
    if DATABASE != "postgresql":
        return None
    admin_url: str = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


# --------------------------------------------------------------------------- Temporal


@pytest.fixture(scope="session")
def temporal_target() -> Iterator[str]:
    """A Temporal dev server (in memory), tuned and with our search attributes, like `r2c up`."""
    port, ui_port, metrics_port = free_port(), free_port(), free_port()
    settings = Settings(temporal_port=port, temporal_ui_port=ui_port)
    argv = dev_server_argv(settings, db_file=None, metrics_port=metrics_port)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = f"127.0.0.1:{port}"
    try:
        import asyncio

        asyncio.run(wait_until_serving(None, target, "default", 30))
        yield target
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def make_settings(
    tmp_path: Path, temporal_target: str, database_url: str | None
) -> Callable[..., Settings]:
    """Settings for one test: its own home, store and task queue, the shared Temporal server."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "temporal_address": temporal_target,
            "postgres_url": database_url,
            "task_queue": f"tq-{uuid.uuid4().hex[:8]}",
            "worker_metrics_port": 0,
            "port": free_port(),
            "metrics_port": free_port(),
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture(scope="session")
async def temporal_client(temporal_target: str) -> AsyncIterator[Client]:
    yield await connect(Settings(temporal_address=temporal_target))


__all__ = ["need", "wait_for", "IN_CI", "DATABASE"]


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """Every test leaves the process's SIGINT and SIGTERM handlers as it found them. A uvicorn
    server run in-process installs its own and puts back what it found when it stops; servers
    stopped in the wrong order leave a stopped server's handler behind, and sse-starlette then
    takes that server's `should_exit` for the API's shutdown and ends every event stream of
    the later tests within half a second."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in before.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
