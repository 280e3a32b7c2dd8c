"""An ASGI app served by uvicorn in the test's own event loop, on a real loopback port, for
clients that cannot use the in-process transport (a browser, a CLI process, schemathesis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from tests.support import wait_for


@asynccontextmanager
async def serving(app: Any, port: int, **config: Any) -> AsyncIterator[str]:
    """`app` on http://127.0.0.1:`port` for the block; yields that URL. `config`: uvicorn
    settings over these defaults (the app's lifespan runs, no access log)."""
    options: dict[str, Any] = {"log_config": None, "access_log": False, "lifespan": "on"}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options | config))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()  # it could not start: its own error fails the test
        return bool(server.started)

    await wait_for(started, what="uvicorn to listen")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
