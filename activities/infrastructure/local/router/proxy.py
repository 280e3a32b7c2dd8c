"""The local router: an HTTP/1.1 reverse proxy that splits traffic across slots by weight.

Built on asyncio protocols and httptools (the parser uvicorn uses), with keep-alive pools to
the upstreams, because it sits on the hot path of every request a component serves:
`client.py` faces the clients (`request.py`: what is sent on), `upstream.py` the instances,
`balancer.py` decides. The public
port proxies every path to the application; the router's own `/status` and `/metrics` are on
a separate admin port bound to 127.0.0.1, so they neither shadow the application's paths nor
show its backends to the world. Bodies are buffered (up to a limit), which suits the APIs this
platform deploys (not streaming).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from activities.infrastructure.local.router.balancer import Router
from activities.infrastructure.local.router.client import AdminConnection, ClientConnection
from activities.infrastructure.local.router.table import RouterLimits

if TYPE_CHECKING:
    from activities.infrastructure.local.router.tracing import RouterTracing

log = logging.getLogger("r2c.router")

RELOAD_EVERY = 0.05
ADMIN_HOST = "127.0.0.1"


def sweep_interval(limits: RouterLimits) -> float:
    """Often enough that no deadline is overrun by more than a quarter of itself (0.05-1 s)."""
    shortest = min(
        limits.header_timeout_seconds, limits.body_timeout_seconds, limits.idle_timeout_seconds
    )
    return min(1.0, max(0.05, shortest / 4))


async def serve(table_path: Path, component: str, environment: str, host: str, port: int,
                stop: asyncio.Event, admin_port: int | None = None,
                tracing: RouterTracing | None = None) -> None:  # fmt: skip
    """Serve until `stop` is set, then drain requests in flight (at most 10 s)."""
    router = Router(table_path, component, environment, tracing)
    router.reload()
    loop = asyncio.get_running_loop()
    # A router restarted after a crash binds its ports again although connections of the dead
    # one may linger in the kernel (FIN-WAIT); the provider runs two at once only while it
    # replaces one, and then the old one stops accepting as soon as the new one serves.
    servers = [
        await loop.create_server(
            lambda: ClientConnection(router),
            host,
            port,
            reuse_address=True,
            reuse_port=True,
            backlog=2048,
        )
    ]
    if admin_port is not None:
        servers.append(
            await loop.create_server(
                lambda: AdminConnection(router),
                ADMIN_HOST,
                admin_port,
                reuse_address=True,
                reuse_port=True,
            )  # fmt: skip
        )
    log.info(
        "router listening", extra={"port": port, "admin_port": admin_port, "component": component}
    )

    async def follow_table() -> None:
        while True:
            router.reload()
            await asyncio.sleep(RELOAD_EVERY)

    async def health_loop() -> None:
        while True:
            await asyncio.sleep(router.table.health.interval_seconds)
            await router.check_health()

    async def sweep_loop() -> None:
        while True:
            await asyncio.sleep(sweep_interval(router.table.limits))
            router.sweep(time.monotonic())

    tasks = [asyncio.create_task(loop_()) for loop_ in (follow_table, health_loop, sweep_loop)]
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        deadline = time.monotonic() + 10
        # Polled: an event set on every request's end would tax the hot path for this once.
        while router.in_flight and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
