"""The API process: uvicorn serving the app, and app metrics on `METRICS_PORT`."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from prometheus_client import start_http_server

from api.app import create_app
from api.deployment_metrics import watch_deployments
from api.metrics import watch_component_health
from api.slo_metrics import watch_slos
from core.db.migrate import upgrade
from core.settings import Settings
from core.tracing import setup_tracing

log = logging.getLogger("r2c.api")


async def serve(settings: Settings) -> None:
    """Apply migrations, start the metrics endpoint, and serve until SIGTERM or SIGINT."""
    setup_tracing("api", settings)
    await asyncio.to_thread(upgrade, settings)
    metrics_server, _ = start_http_server(settings.metrics_port, addr=settings.host)
    watch_component_health(settings)
    watch_deployments(settings)
    watch_slos(settings)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        loop="none",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    log.info("api listening", extra={"port": settings.port, "metrics_port": settings.metrics_port})
    try:
        await server.serve()
    finally:
        metrics_server.shutdown()
