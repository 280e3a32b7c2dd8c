"""A worker for the deployment benchmark: the real deployment workflow and store, on a NO-OP
infrastructure provider (named as the fake it is: the benchmark measures orchestration, and
starting real processes would drown it), plus a bare workflow of N no-op activities.

    python -m tests.perf.noop_worker   (env: TEMPORAL_ADDRESS, R2C_TASK_QUEUE, R2C_HOME)
"""

from __future__ import annotations

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
    from core.models.components import Component
    from core.models.infrastructure import InstanceSetSpec, SetInfo, TargetState
    from core.settings import load_settings
    from core.temporal import connect
    from workflows.deployment.workflow import DeploymentWorkflow


class NoopProvider:
    """Remembers weights and sets in memory and does nothing else."""

    def __init__(self) -> None:
        self.targets_: dict[tuple[str, str], TargetState] = {}

    def _get(self, component: str, environment: str) -> TargetState:
        key = (component, environment)
        if key not in self.targets_:
            self.targets_[key] = TargetState(component=component, environment=environment,
                                             endpoint="http://noop")  # fmt: skip
        return self.targets_[key]

    async def ensure_instances(self, component: Component, spec: InstanceSetSpec) -> SetInfo:
        state = self._get(component.name, spec.environment)
        info = SetInfo(slot=spec.slot, version=spec.version, desired=spec.count,
                       weight=state.weights.get(spec.slot, 0), instances=[])  # fmt: skip
        state.sets = [s for s in state.sets if s.slot != spec.slot] + [info]
        return info

    async def set_weights(self, component: Component, environment: str,
                          weights: dict[str, int]) -> TargetState:  # fmt: skip
        state = self._get(component.name, environment)
        state.weights = dict(weights)
        return state

    async def state(self, component: str, environment: str) -> TargetState:
        return self._get(component, environment)

    async def remove_set(self, component: str, environment: str, slot: str) -> None:
        state = self._get(component, environment)
        state.sets = [s for s in state.sets if s.slot != slot]
        state.weights.pop(slot, None)

    async def retire(self, component: str, environment: str | None = None) -> None:
        self.targets_ = {k: v for k, v in self.targets_.items() if k[0] != component}

    async def environments(self, component: str) -> list[str]:
        return [e for c, e in self.targets_ if c == component]

    async def targets(self) -> list[tuple[str, str]]:
        return list(self.targets_)


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


async def main() -> None:
    settings = load_settings()
    await asyncio.to_thread(upgrade, settings)
    client = await connect(settings)
    engine = make_engine(settings)
    provider = NoopProvider()
    async with httpx.AsyncClient() as http:
        infra = InfrastructureActivities(provider, sessions(engine))
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


if __name__ == "__main__":
    asyncio.run(main())
