"""The FastAPI application: thin routers over services, Temporal behind one gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors, openapi
from api.codec_cors import CodecCors
from api.gateway import Gateway
from api.guard import RequestGuard
from api.key_verifier import KeyVerifier
from api.middleware import RequestContextMiddleware
from api.routers import (
    analysis,
    apikeys,
    audit,
    codec,
    components,
    configuration,
    deployment_streams,
    deployments,
    events,
    health,
    insights,
    line_stops,
    notifications,
    pipelines,
    policies,
    releases,
    schedules,
    webhooks,
    workflows,
)
from api.shared_auth import SharedAuth
from api.shared_tokens import SharedTokenVerifier
from api.ui.app import create_ui_app
from core.db.engine import make_engine, sessions
from core.oidc import OidcConfig
from core.settings import Settings
from core.temporal import connect, make_runtime
from core.tracing import EXCLUDED_URLS, tracer_provider
from core.vault import open_secret_store

DESCRIPTION = """
The orchestration API of the readme-to-cicd platform. Every long-running operation is a
Temporal workflow: start it here, follow it here or in the Temporal Web UI, cancel it here.

Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`, or with an OIDC access
token (`Authorization: Bearer <token>`) when R2C_OIDC_ISSUER is set. Roles: `viewer`
(read), `operator` (start, cancel, act), `admin` (everything, including keys and components);
each route says which it needs (`x-required-role`). Every error has the body `ErrorBody`.
"""


def create_app(settings: Settings) -> FastAPI:
    """Build the app. Its store and Temporal client are opened when it starts (lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        app.state.settings = settings
        app.state.sessions = sessions(engine)
        # REDIS_URL: replicas share verified keys, revocations and failure limits. Redis
        # that is down does not stop the start: it is retried, and GET /ready shows it.
        shared = SharedAuth(settings) if settings.redis_url else None
        app.state.shared_auth = shared
        app.state.keys = KeyVerifier(
            app.state.sessions,
            per_key=settings.auth_failures_per_key,
            per_address=settings.auth_failures_per_address,
            shared=shared,
        )
        if shared is not None:
            shared.start(app.state.keys.forget_here, app.state.keys.recheck_all)
            oidc = OidcConfig.from_settings(settings)
            if oidc is not None:  # tokens too (api.auth makes a plain verifier otherwise)
                app.state.oidc = SharedTokenVerifier(oidc, shared)
        # Lazy: the API starts, and says "not ready", while Temporal is still down.
        client = await connect(settings, lazy=True, identity="r2c-api", runtime=make_runtime())
        app.state.temporal = client
        app.state.gateway = Gateway(client, settings)
        # Connects on first use, like Temporal: a Vault that is down makes 503s, not a crash.
        app.state.secrets = open_secret_store(settings)
        try:
            yield
        finally:
            # Last-use writes still in flight finish on the store before it is closed.
            await app.state.keys.drain()
            # The live-update pollers and the dashboard's Redis sessions, made on first use.
            for made in ("live_hub", "ui_sessions"):
                if (owner := getattr(app.state, made, None)) is not None:
                    await owner.close()
            if shared is not None:
                await shared.stop()
            await engine.dispose()

    app = FastAPI(
        title="readme-to-cicd orchestration API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    # The last added runs first: CORS of /codec (so even its errors reach the UI), request
    # ids, then the guard, then the app.
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(CodecCors, ui_url=settings.temporal_ui)
    errors.install(app)
    for module in (
        health,
        workflows,
        components,
        deployments,
        deployment_streams,
        configuration,
        policies,
        schedules,
        releases,
        pipelines,
        line_stops,
        events,
        webhooks,
        notifications,
        insights,
        analysis,
        apikeys,
        audit,
        codec,
    ):
        app.include_router(module.router)
    app.mount("/ui", create_ui_app(app))  # the web dashboard (docs/dashboard.md)
    openapi.document(app)
    _trace(app)
    return app


def _trace(app: FastAPI) -> None:
    """A server span per request (probes and scrapes left out), current while it is handled,
    so the workflow it starts and its log lines share its trace. Nothing without tracing."""
    provider = tracer_provider()
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # The ASGI receive/send spans only say that bytes moved: a span per request is enough.
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
    )
