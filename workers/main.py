"""The worker process: runs the workflows and activities on the task queue until told to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.infrastructure.activities import InfrastructureActivities
from activities.infrastructure.local import processes
from activities.infrastructure.local.provider import LocalProvider
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.default_schedules import ensure_default_schedules
from core.secrets import SecretStore
from core.settings import Settings
from core.temporal import connect, ensure_search_attributes, make_runtime
from core.tracing import setup_tracing, shutdown_tracing
from core.vault import open_secret_store
from workers.registry import WORKFLOWS, activities

log = logging.getLogger("r2c.worker")


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    ready_file: Path | None = None,
    *,
    default_schedules: bool = False,
) -> None:
    """Serve the task queue until `stop` is set, then shut down gracefully. With
    `default_schedules` (the worker process), first make the system's own schedules match the
    settings; in-process test workers share one Temporal server and leave them alone."""
    await asyncio.to_thread(upgrade, settings)
    # The SDK's own metrics get their own port, apart from the app's metrics port.
    port = settings.worker_metrics_port
    runtime = make_runtime(f"{settings.host}:{port}" if port else None)
    client = await connect(settings, runtime=runtime)
    await ensure_search_attributes(client)
    if default_schedules:
        await _ensure_default_schedules(client, settings)
    engine = make_engine(settings)
    try:
        async with httpx.AsyncClient() as http:
            provider = LocalProvider(settings.home, http)
            # Instances get their secret values from Vault when they start, never before.
            secrets = open_secret_store(settings)
            await _recover(provider, sessions(engine), secrets)
            worker = Worker(
                client,
                task_queue=settings.task_queue,
                workflows=list(WORKFLOWS),
                activities=activities(
                    sessions(engine),
                    http,
                    provider,
                    settings.prometheus_url,
                    secrets=secrets,
                    vault_wait_seconds=settings.vault_wait_seconds,
                    client=client,
                    settings=settings,
                ),
                graceful_shutdown_timeout=timedelta(seconds=10),
            )
            reaper = asyncio.create_task(_reap_children())
            async with worker:
                log.info(
                    "worker ready",
                    extra={"task_queue": settings.task_queue, "temporal": settings.temporal_target},
                )
                if ready_file is not None:
                    await asyncio.to_thread(ready_file.write_text, "ready\n")
                await stop.wait()
                log.info("worker stopping")
            reaper.cancel()
    finally:
        await engine.dispose()


async def _recover(
    provider: LocalProvider, store: async_sessionmaker[Any], secrets: SecretStore
) -> None:
    """After a restart: bring back routers that died meanwhile, and tell the store what runs
    now (instances that died while no worker watched are reported dead, not forgotten)."""
    restarted = await provider.reconcile()
    if restarted:
        log.warning("restarted routers that had died", extra={"targets": restarted})
    infra = InfrastructureActivities(provider, store, secrets)
    for component, environment in await provider.targets():
        await infra.mirror(component, environment)


async def _ensure_default_schedules(client: Client, settings: Settings) -> None:
    # A schedule that cannot be made now must not keep the worker from serving deployments;
    # the next start tries again.
    try:
        await ensure_default_schedules(client, settings)
    except Exception as err:
        log.error("default schedules not ensured: %s", err)


async def _reap_children() -> None:
    """Instances this worker started and that exited must not linger as zombies."""
    while True:
        await asyncio.sleep(5)
        processes.reap()


async def serve(settings: Settings, ready_file: Path | None = None) -> int:
    """Run the worker with SIGTERM/SIGINT handled as a graceful stop; returns the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    setup_tracing("worker", settings)
    try:
        await run_worker(settings, stop, ready_file, default_schedules=True)
    except (Exception, asyncio.CancelledError) as err:
        # A fatal worker error (Temporal gone for good, say) surfaces here, sometimes as a
        # cancellation of our own task; either way the process ends and its supervisor decides.
        log.error("worker stopped: %s", err or type(err).__name__)
        return 1
    finally:
        # The spans of the last activities go out before the process ends (off the loop: the
        # exporter's final POST blocks).
        await asyncio.to_thread(shutdown_tracing)
    return 0
