"""The router process: serve until SIGTERM or SIGINT, then drain."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from activities.infrastructure.local.router.proxy import serve
from activities.infrastructure.local.router.table import read_table


async def run_router(table_path: Path, host: str, port: int, admin_port: int | None = None) -> int:
    """Run the router of the table at `table_path`; its status and metrics on `admin_port`."""
    table = read_table(table_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(table_path, table.component, table.environment, host, port, stop, admin_port)
    return 0
