"""The router process: serve until SIGTERM or SIGINT, then drain."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from activities.infrastructure.local.router.proxy import serve
from activities.infrastructure.local.router.table import read_table
from core.tracing import configure, shutdown_tracing, tracer

if TYPE_CHECKING:
    from activities.infrastructure.local.router.tracing import RouterTracing


async def run_router(table_path: Path, host: str, port: int, admin_port: int | None = None) -> int:
    """Run the router of the table at `table_path`; its status and metrics on `admin_port`."""
    table = read_table(table_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tracing = _tracing(table.component, table.environment)
    try:
        await serve(
            table_path, table.component, table.environment, host, port, stop, admin_port, tracing
        )
    finally:
        shutdown_tracing()  # the spans still buffered go out before the process ends
    return 0


def _tracing(component: str, environment: str) -> RouterTracing | None:
    """The router's tracing, when the worker passed it a tracing configuration."""
    if not configure("router", os.environ.get("JAEGER_ENDPOINT")):
        return None
    from activities.infrastructure.local.router.tracing import RouterTraceConfig, RouterTracing

    router_tracer = tracer("r2c.router")
    assert router_tracer is not None  # configured just above
    return RouterTracing(router_tracer, RouterTraceConfig.from_env(), component, environment)
