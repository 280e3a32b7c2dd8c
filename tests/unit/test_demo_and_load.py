"""The demo component and `r2c load` against it, in one process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn

from cli.demo import DemoApp, env_float
from cli.load import render_table, run_load
from cli.processes import free_port
from tests.support import wait_for


@pytest.fixture
async def failing_demo() -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(DemoApp("v9", error_rate=0.5, latency_ms=0), port=port, log_config=None)
    )
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: asyncio.sleep(0, server.started), what="demo started")
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    await task


async def test_load_reports_failures_by_version(failing_demo: str) -> None:
    report = await run_load(failing_demo, rps=200, duration=1, concurrency=8)
    assert report.requests == 200
    v9 = report.by_version["v9"]
    assert v9.requests == 200 and v9.failed == report.failed
    assert 60 <= report.failed <= 140  # half of them fail, give or take chance
    assert report.errors == {"HTTP 500": report.failed}
    table = render_table(report)
    assert "v9" in table and "HTTP 500" in table


async def test_load_counts_refused_connections() -> None:
    report = await run_load(f"http://127.0.0.1:{free_port()}/", rps=20, duration=0.5)
    assert report.failed == report.requests == 10
    assert "none" in report.by_version


def test_demo_settings_come_from_flags_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_ERROR_RATE", "0.25")
    assert env_float("DEMO_ERROR_RATE", None, 0.0) == 0.25
    assert env_float("DEMO_ERROR_RATE", 0.5, 0.0) == 0.5
    monkeypatch.setenv("DEMO_ERROR_RATE", "lots")
    with pytest.raises(ValueError, match="DEMO_ERROR_RATE must be a number"):
        env_float("DEMO_ERROR_RATE", None, 0.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        DemoApp("v1", error_rate=2, latency_ms=0)
