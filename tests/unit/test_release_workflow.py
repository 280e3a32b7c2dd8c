"""The release workflow on the time-skipping server: waves in dependency order, parallel within
a wave, a failure undone in reverse wave order, an abort and a cancel compensated, a busy target
refused, and a history that replays (so a restarted worker starts no second child).

The children are a fake deployment workflow registered under the real one's name; its
duration and outcome come from its description, which the fake prepare activity writes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from core.contracts import DEPLOYMENT_WORKFLOW
from core.models.deployments import (
    ActionRequest,
    DeploymentInput,
    DeploymentState,
    DeploymentStatus,
)
from core.models.releases import (
    AWAIT_DEPLOYMENT_ACTIVITY,
    FORGET_DEPLOYMENT_ACTIVITY,
    PREPARE_DEPLOYMENT_ACTIVITY,
    READ_GRAPH_ACTIVITY,
    RECORD_RELEASE_ACTIVITY,
    START_ROLLBACK_ACTIVITY,
    AwaitAnswer,
    AwaitRequest,
    ForgetRequest,
    GraphAnswer,
    GraphRequest,
    PrepareAnswer,
    PrepareRequest,
    ReleaseInput,
    ReleaseState,
    ReleaseStatus,
    RollbackStarted,
    RollbackStartRequest,
)
from workflows.release import ReleaseWorkflow

# db -> api -> web, and worker beside api (both need db): waves [db], [api, worker], [web].
GRAPH = {"db": [], "api": ["db"], "worker": ["db"], "web": ["api"]}


@workflow.defn(name=DEPLOYMENT_WORKFLOW)
class FakeDeployment:
    """Runs `seconds`, then ends in `state` (from its description `seconds:state`); a
    cancellation ends it aborted, as the real one (it re-raises after undoing)."""

    @workflow.run
    async def run(self, inp: DeploymentInput) -> DeploymentStatus:
        seconds, state = inp.description.split(":")
        started = workflow.now()
        await workflow.sleep(float(seconds))
        return DeploymentStatus(
            deployment_id=inp.deployment_id,
            component=inp.component,
            environment=inp.environment,
            version=inp.version,
            previous_version="v1",
            strategy=inp.strategy.type,
            state=DeploymentState(state),
            reason=f"fake {state}",
            started_at=started,
            finished_at=workflow.now(),
        )


@dataclass
class Fakes:
    plan: dict[str, str] = field(default_factory=dict)  # component -> "seconds:state"
    prepared: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    rollbacks: list[str] = field(default_factory=list)  # components, in the order started
    recorded: list[ReleaseState] = field(default_factory=list)  # states the store was told

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name=READ_GRAPH_ACTIVITY)
        async def read_graph(req: GraphRequest) -> GraphAnswer:
            return GraphAnswer(graph=GRAPH, unknown=[c for c in req.components if c not in GRAPH])

        @activity.defn(name=PREPARE_DEPLOYMENT_ACTIVITY)
        async def prepare(req: PrepareRequest) -> PrepareAnswer:
            self.prepared.append(req.deployment_id)
            inp = DeploymentInput(
                component=req.component,
                environment=req.environment,
                version=req.version,
                description=self.plan.get(req.component, "10:succeeded"),
                deployment_id=req.deployment_id,
                initiator=f"release:{req.release_id}",
                replicas_resolved=1,
            )
            return PrepareAnswer(input=inp.model_dump(mode="json"))

        @activity.defn(name=FORGET_DEPLOYMENT_ACTIVITY)
        async def forget(req: ForgetRequest) -> None:
            self.forgotten.append(req.deployment_id)

        @activity.defn(name=START_ROLLBACK_ACTIVITY)
        async def start_rollback(req: RollbackStartRequest) -> RollbackStarted:
            self.rollbacks.append(req.deployment_id)
            return RollbackStarted(
                deployment_id=f"rb-{req.deployment_id}", workflow_id="w", run_id="r"
            )

        @activity.defn(name=AWAIT_DEPLOYMENT_ACTIVITY)
        async def await_deployment(_: AwaitRequest) -> AwaitAnswer:
            return AwaitAnswer(state=DeploymentState.SUCCEEDED)

        @activity.defn(name=RECORD_RELEASE_ACTIVITY)
        async def record(status: ReleaseStatus) -> None:
            self.recorded.append(status.state)

        return [read_graph, prepare, forget, start_rollback, await_deployment, record]


@dataclass
class Release:
    client: Client
    fakes: Fakes
    queue: str = field(default_factory=lambda: f"rel-{uuid.uuid4().hex[:8]}")

    def worker(self) -> Worker:
        return Worker(
            self.client,
            task_queue=self.queue,
            workflows=[ReleaseWorkflow, FakeDeployment],
            activities=self.fakes.activities(),
        )

    async def start(self, components: dict[str, str]) -> WorkflowHandle[Any, ReleaseStatus]:
        release_id = f"r{uuid.uuid4().hex[:8]}"
        return await self.client.start_workflow(
            ReleaseWorkflow.run,
            ReleaseInput(
                release_id=release_id,
                environment=f"e{release_id}",  # its own targets: tests do not share locks
                components=components,
                initiator="apikey:test",
            ),
            id=f"release:{release_id}",
            task_queue=self.queue,
            execution_timeout=timedelta(days=1),
        )

    def components_rolled_back(self, status: ReleaseStatus) -> list[str]:
        by_id = {p.deployment_id: name for name, p in status.components.items()}
        return [by_id[d] for d in self.fakes.rollbacks]


ALL = {"db": "v2", "api": "v2", "worker": "v2", "web": "v2"}


async def test_waves_run_in_dependency_order_in_parallel_within_a_wave(
    env: WorkflowEnvironment,
) -> None:
    r = Release(env.client, Fakes(plan={"worker": "30:succeeded"}))
    async with r.worker():
        handle = await r.start(ALL)
        status = await handle.result()
    assert status.state is ReleaseState.SUCCEEDED, status.reason
    assert status.waves == [["db"], ["api", "worker"], ["web"]]
    c = status.components
    assert all(p.state is DeploymentState.SUCCEEDED for p in c.values())
    # api and worker start together; web waits for the slower of them (worker, 30 s).
    assert c["api"].started_at == c["worker"].started_at
    assert (
        c["db"].finished_at and c["api"].started_at and c["db"].finished_at <= c["api"].started_at
    )
    assert c["worker"].finished_at and c["web"].started_at
    assert c["web"].started_at >= c["worker"].finished_at
    assert c["api"].finished_at and c["api"].finished_at < c["worker"].finished_at
    assert status.graph == {name: GRAPH[name] for name in sorted(ALL)}
    assert r.fakes.rollbacks == []
    assert r.fakes.recorded == [ReleaseState.PROGRESSING, ReleaseState.SUCCEEDED]
    # One prepared deployment per component, under the release's own ids.
    assert sorted(r.fakes.prepared) == sorted(p.deployment_id for p in c.values())
    # The history replays: a worker restarted mid-release would start no second child.
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[ReleaseWorkflow], data_converter=pydantic_data_converter)
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure
    starts = [
        e
        for e in history.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    assert len(starts) == 4


async def test_failure_in_wave_two_rolls_back_wave_two_then_one(env: WorkflowEnvironment) -> None:
    # worker succeeds at 10 s; api's canary rolls itself back at 30 s.
    r = Release(env.client, Fakes(plan={"api": "30:rolled_back"}))
    async with r.worker():
        status = await (await r.start(ALL)).result()
    assert status.state is ReleaseState.ROLLED_BACK
    assert status.failed_component == "api"
    assert status.reason and "api" in status.reason
    c = status.components
    assert c["api"].state is DeploymentState.ROLLED_BACK
    assert c["web"].state is None and c["web"].deployment_id is None  # untouched
    # Reverse order: worker (wave 2) before db (wave 1); api undid itself.
    assert r.components_rolled_back(status) == ["worker", "db"]
    assert c["worker"].rollback_state is DeploymentState.SUCCEEDED
    assert c["worker"].rollback_finished_at and c["db"].rollback_started_at
    assert c["worker"].rollback_finished_at <= c["db"].rollback_started_at


async def test_a_failure_aborts_the_rest_of_its_wave(env: WorkflowEnvironment) -> None:
    r = Release(env.client, Fakes(plan={"api": "10:failed", "worker": "600:succeeded"}))
    async with r.worker():
        status = await (await r.start(ALL)).result()
    assert status.state is ReleaseState.ROLLED_BACK
    assert status.failed_component == "api"
    assert status.components["worker"].state is DeploymentState.ABORTED
    assert r.components_rolled_back(status) == ["db"]


async def test_operator_abort_compensates(env: WorkflowEnvironment) -> None:
    r = Release(
        env.client,
        Fakes(plan={"db": "0.1:succeeded", "api": "600:succeeded", "worker": "600:succeeded"}),
    )
    async with r.worker():
        handle = await r.start(ALL)
        await _wait_state(handle, "api", DeploymentState.PROGRESSING)
        await handle.execute_update("abort", ActionRequest(by="apikey:ops", reason="bad idea"))
        status = await handle.result()
    assert status.state is ReleaseState.ROLLED_BACK
    assert status.reason == "aborted by apikey:ops: bad idea"
    assert status.failed_component is None
    assert status.components["api"].state is DeploymentState.ABORTED
    assert r.components_rolled_back(status) == ["db"]


async def test_the_ui_abort_signal_follows_r2c_ui_actions(env: WorkflowEnvironment) -> None:
    """R2C_UI_ACTIONS=none: the Temporal UI's abort signal is noted and ignored (the API's
    abort, an update, still works); under `safe` it aborts."""
    r = Release(env.client, Fakes(plan={"db": "0.1:succeeded", "api": "600:succeeded"}))
    async with r.worker():
        ends: list[ReleaseStatus] = []
        for actions in ("none", "safe"):
            release_id = f"r{uuid.uuid4().hex[:8]}"
            handle = await env.client.start_workflow(
                ReleaseWorkflow.run,
                ReleaseInput(
                    release_id=release_id,
                    environment=f"e{release_id}",
                    components={"db": "v2", "api": "v2"},
                    initiator="apikey:test",
                    ui_actions=actions,
                ),
                id=f"release:{release_id}",
                task_queue=r.queue,
                execution_timeout=timedelta(days=1),
            )
            await _wait_state(handle, "api", DeploymentState.PROGRESSING)
            await handle.signal("abort", ActionRequest(by="someone", reason="from the UI"))
            if actions == "none":
                status = await handle.query(ReleaseWorkflow.get_status)
                for _ in range(100):
                    if status.notices:
                        break
                    await asyncio.sleep(0.05)
                    status = await handle.query(ReleaseWorkflow.get_status)
                assert "R2C_UI_ACTIONS=none" in status.notices[0]
                assert status.state is ReleaseState.PROGRESSING
                await handle.execute_update("abort", ActionRequest(by="apikey:ops"))
            ends.append(await handle.result())
    assert ends[0].reason == "aborted by apikey:ops"
    assert ends[1].state is ReleaseState.ROLLED_BACK
    assert (ends[1].reason or "").startswith("aborted by someone")


async def test_cancel_compensates_and_is_not_swallowed(env: WorkflowEnvironment) -> None:
    r = Release(
        env.client,
        Fakes(plan={"db": "0.1:succeeded", "api": "600:succeeded", "worker": "600:succeeded"}),
    )
    async with r.worker():
        handle = await r.start(ALL)
        await _wait_state(handle, "api", DeploymentState.PROGRESSING)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        status = await handle.query(ReleaseWorkflow.get_status)
    assert status.state is ReleaseState.ROLLED_BACK
    assert status.components["worker"].state is DeploymentState.ABORTED
    assert r.components_rolled_back(status) == ["db"]
    assert r.fakes.recorded[-1] is ReleaseState.ROLLED_BACK


async def test_a_busy_target_refuses_the_child_and_fails_the_release(
    env: WorkflowEnvironment,
) -> None:
    # A second release of a target the first is deploying: its child finds the lock.
    busy = Release(env.client, Fakes(plan={"db": "600:succeeded"}))
    async with busy.worker():
        running = await busy.start({"db": "v2"})
        await _wait_state(running, "db", DeploymentState.PROGRESSING)
        inp = await _input(running)
        second = await busy.client.start_workflow(
            ReleaseWorkflow.run,
            inp.model_copy(update={"release_id": "other"}),
            id=f"release:other-{uuid.uuid4().hex[:6]}",
            task_queue=busy.queue,
        )
        status = await second.result()
        await running.cancel()
    assert status.state is ReleaseState.ROLLED_BACK
    assert status.failed_component == "db"
    assert status.reason and "already being deployed" in status.reason
    assert busy.fakes.forgotten == [status.components["db"].deployment_id]


async def _input(handle: WorkflowHandle[Any, ReleaseStatus]) -> ReleaseInput:
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    payload = started.input.payloads[0]
    [value] = await pydantic_data_converter.decode([payload], [ReleaseInput])
    assert isinstance(value, ReleaseInput)
    return value


# Time skips only while a test waits for a result: db's deployment is short, so the wait for
# wave 2 is short in real time too.
async def _wait_state(
    handle: WorkflowHandle[Any, ReleaseStatus], component: str, state: DeploymentState
) -> None:
    for _ in range(200):
        status = await handle.query(ReleaseWorkflow.get_status)
        p = status.components.get(component)
        if p is not None and p.state is state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{component} never reached {state}")
