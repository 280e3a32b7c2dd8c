"""A worker for the deployment benchmark: the real deployment workflow and store, on a NO-OP
infrastructure provider (named as the fake it is: the benchmark measures orchestration, and
starting real processes would drown it), plus a bare workflow of N no-op activities.

    python -m benchmarks.noop_worker [--no-encryption]
        (env: TEMPORAL_ADDRESS, R2C_TASK_QUEUE, R2C_HOME)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import httpx

    from activities.analysis.activities import AnalysisActivities
    from activities.deployments import DeploymentActivities
    from activities.infrastructure.activities import InfrastructureActivities
    from core.db.engine import make_engine, sessions
    from core.db.migrate import upgrade
    from core.settings import load_settings
    from core.temporal import connect
    from core.tracing import setup_tracing, shutdown_tracing
    from core.vault import open_secret_store
    from tests.noop_provider import NoopProvider
    from workflows.deployment.workflow import DeploymentWorkflow


@activity.defn(name="noop")
async def noop(_: int) -> int:
    return 0


@workflow.defn(name="bare-activities")
class BareWorkflow:
    """The baseline: `n` no-op activities in a row, with the deployment's activity options."""

    @workflow.run
    async def run(self, n: int) -> int:
        for i in range(n):
            await workflow.execute_activity(noop, i, start_to_close_timeout=timedelta(seconds=30))
        return n


async def main(encrypted: bool) -> None:
    settings = load_settings().model_copy(update={"payload_encryption": encrypted})
    await asyncio.to_thread(upgrade, settings)
    setup_tracing("worker", settings)  # only with OTEL_EXPORTER_OTLP_ENDPOINT (--tracing)
    client = await connect(settings)
    engine = make_engine(settings)
    provider = NoopProvider()
    async with httpx.AsyncClient() as http:
        infra = InfrastructureActivities(provider, sessions(engine), open_secret_store(settings))
        analysis = AnalysisActivities(provider, http, None)
        record = DeploymentActivities(sessions(engine))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[DeploymentWorkflow, BareWorkflow],
            activities=[
                infra.ensure_instances,
                infra.set_weights,
                infra.read_state,
                infra.remove_set,
                analysis.measure,
                record.record,
                noop,
            ],  # fmt: skip
            max_concurrent_activities=200,
        ):
            print("ready", flush=True)
            await stop.wait()
    await engine.dispose()
    shutdown_tracing()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-encryption", action="store_true", help="payloads in clear (the codec's baseline)"
    )
    asyncio.run(main(encrypted=not parser.parse_args().no_encryption))
