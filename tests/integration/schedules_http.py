"""The system with its API also on a real port, for the tests that speak HTTP to it (the
`r2c schedule` commands, schemathesis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from tests.integration.system import System
from tests.support import wait_for


@pytest.fixture
async def served(make_system: Callable[..., Any]) -> AsyncIterator[System]:
    """The system (its worker runs the scheduled health checks), its API also on a real port."""
    system: System = await make_system(noop=True)
    config = uvicorn.Config(
        create_app(system.settings),
        host="127.0.0.1",
        port=system.settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
        return server.started

    await wait_for(started, what="uvicorn to listen")
    try:
        yield system
    finally:
        server.should_exit = True
        await task
