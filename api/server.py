"""The API process: uvicorn serving the app, and app metrics on `METRICS_PORT`; both HTTPS
when R2C_TLS_CERT/R2C_TLS_KEY are set (core/tls: TLS 1.3 at least unless configured)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIServer

import uvicorn
from prometheus_client import start_http_server

from api.app import create_app
from api.deployment_metrics import watch_deployments
from api.line_stop_metrics import watch_line_stops
from api.metrics import watch_component_health
from api.slo_metrics import watch_slos
from core.db.migrate import upgrade
from core.settings import Settings
from core.tls import check_server_files, min_version, require_secure_transport, server_context
from core.tracing import setup_tracing

log = logging.getLogger("r2c.api")


async def serve(settings: Settings) -> None:
    """Apply migrations, start the metrics endpoint, and serve until SIGTERM or SIGINT.
    Raises SettingsError before anything starts when the transport is not acceptable
    (plain HTTP on a public address outside development, or a bad certificate)."""
    require_secure_transport(settings, "api")
    check_server_files(settings)
    setup_tracing("api", settings)
    await asyncio.to_thread(upgrade, settings)
    metrics_server = start_metrics_server(settings)
    watch_component_health(settings)
    watch_deployments(settings)
    watch_slos(settings)
    watch_line_stops(settings)
    server = uvicorn.Server(uvicorn_config(settings, create_app(settings)))
    log.info(
        "api listening",
        extra={
            "port": settings.port,
            "metrics_port": settings.metrics_port,
            "tls": settings.tls_cert is not None,
        },
    )
    try:
        await server.serve()
    finally:
        metrics_server.shutdown()


def start_metrics_server(settings: Settings) -> WSGIServer:
    """The Prometheus endpoint on METRICS_PORT, with the API's certificate when it has one."""
    if settings.tls_cert is None or settings.tls_key is None:
        server, _ = start_http_server(settings.metrics_port, addr=settings.host)
        return server
    server, _ = start_http_server(
        settings.metrics_port,
        addr=settings.host,
        certfile=str(settings.tls_cert),
        keyfile=str(settings.tls_key),
        tls_min_version=min_version(settings),
    )
    return server


def uvicorn_config(settings: Settings, app: Any) -> uvicorn.Config:
    """How uvicorn serves `app`: on R2C_HOST:PORT, with TLS when configured."""
    tls: dict[str, Any] = {}
    if settings.tls_cert is not None:
        # Our own context (uvicorn's options cannot set a minimum version); the certificate
        # path tells uvicorn it serves https (its `is_ssl`, its log lines).
        tls = {"ssl_certfile": settings.tls_cert, "ssl_context_factory": _context(settings)}
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        loop="none",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=10,
        **tls,
    )


def _context(
    settings: Settings,
) -> Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        context = server_context(settings)
        context.set_alpn_protocols(["http/1.1"])  # what httptools speaks
        return context

    return factory
