"""The pipeline run workflow on the time-skipping server: gates in order (soak measured from the
upstream verification, the schedule window, approval with roles, promote), fan-in all/one,
pause/resume/abort, the line stop and a hold waited out, automatic rollback and its
guardrails, and a history that replays.

The activities are fakes registered under the real names, over an in-memory store; each
stage's release is a fake release workflow under the real one's name, whose outcome comes
from the environment's name: `bad*` ends rolled back, `slow*` takes an hour."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from core.models.analysis import MeasureRequest, MetricValue
from core.models.pipelines import (
    CHECK_GATES_ACTIVITY,
    PREPARE_RELEASE_ACTIVITY,
    RECORD_RUN_ACTIVITY,
    RECORD_VERIFIED_ACTIVITY,
    GateAnswer,
    GateCheck,
    LastVerified,
    PipelineSpec,
    PreparedStage,
    PrepareStage,
    RunAction,
    RunActionRequest,
    RunInput,
    RunState,
    RunStatus,
    StageState,
    VerifiedRecord,
    Window,
)
from core.models.releases import RELEASE_WORKFLOW, ReleaseInput, ReleaseState, ReleaseStatus
from core.models.roles import Role
from workflows.pipeline import PipelineWorkflow

COMBO = {"api": "v2", "web": "v5"}
OLD = {"api": "v1", "web": "v4"}
FAILING = {"metrics": [{"name": "check", "query": "up", "failure_condition": "result > 0.5"}]}


@workflow.defn(name=RELEASE_WORKFLOW)
class FakeRelease:
    @workflow.run
    async def run(self, inp: ReleaseInput) -> ReleaseStatus:
        started = workflow.now()
        if inp.environment.startswith("slow"):
            await workflow.sleep(3600)
        state = ReleaseState.ROLLED_BACK if inp.environment.startswith("bad") else None
        return ReleaseStatus(
            release_id=inp.release_id,
            environment=inp.environment,
            state=state or ReleaseState.SUCCEEDED,
            reason="fake",
            started_at=started,
            finished_at=workflow.now(),
        )


@dataclass
class Store:
    """The fake store: verifications, holds and the line stop."""

    verified: list[VerifiedRecord] = field(default_factory=list)
    holds: dict[str, str] = field(default_factory=dict)
    line_stop: str | None = None
    released: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    measured: float = 0.0  # the analysis' value: above 0.5 fails

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name=CHECK_GATES_ACTIVITY)
        async def check_gates(req: GateCheck) -> GateAnswer:
            key = dict(req.components)
            found: dict[str, datetime] = {}
            for v in self.verified:
                if v.components == key and v.environment in req.upstream and not v.rollback:
                    found.setdefault(v.environment, v.verified_at)
            mine = [v for v in self.verified if v.environment == req.environment]
            last = mine[-1] if mine else None
            return GateAnswer(
                verified_at=found,
                line_stop=self.line_stop,
                hold=self.holds.get(req.environment),
                window_wait=req.window.seconds_until_open(req.now) if req.window else 0.0,
                last_verified=LastVerified(
                    components=last.components if last else None,
                    rollback=bool(last and last.rollback),
                ),
            )

        @activity.defn(name=PREPARE_RELEASE_ACTIVITY)
        async def prepare(req: PrepareStage) -> PreparedStage:
            self.released.append((req.environment, dict(req.components)))
            inp = ReleaseInput(
                environment=req.environment,
                components=req.components,
                release_id=req.release_id,
                initiator=f"pipeline:{req.pipeline}",
            )
            return PreparedStage(input=inp.model_dump(mode="json"))

        @activity.defn(name=RECORD_VERIFIED_ACTIVITY)
        async def record_verified(req: VerifiedRecord) -> None:
            self.verified.append(req)

        @activity.defn(name=RECORD_RUN_ACTIVITY)
        async def record_run(_: RunStatus) -> None:
            return None

        @activity.defn(name="measure-metric")
        async def measure(req: MeasureRequest) -> MetricValue:
            return MetricValue() if req.baseline else MetricValue(value=self.measured)

        return [check_gates, prepare, record_verified, record_run, measure]


@dataclass
class Run:
    env: WorkflowEnvironment
    store: Store = field(default_factory=Store)
    queue: str = field(default_factory=lambda: f"pl-{uuid.uuid4().hex[:8]}")

    @property
    def client(self) -> Client:
        return self.env.client

    def worker(self) -> Worker:
        return Worker(
            self.client,
            task_queue=self.queue,
            workflows=[PipelineWorkflow, FakeRelease],
            activities=self.store.activities(),
        )

    async def start(
        self, stages: list[dict[str, Any]], components: dict[str, str] | None = None
    ) -> WorkflowHandle[Any, RunStatus]:
        run_id = f"run-{uuid.uuid4().hex[:12]}"
        return await self.client.start_workflow(
            PipelineWorkflow.run,
            RunInput(
                pipeline="p",
                run_id=run_id,
                spec=PipelineSpec.model_validate({"stages": stages}),
                components=components or COMBO,
                initiator="apikey:test",
            ),
            id=f"pipeline:p:{run_id}",
            task_queue=self.queue,
            execution_timeout=timedelta(days=30),
        )

    async def until(
        self,
        handle: WorkflowHandle[Any, RunStatus],
        done: Callable[[RunStatus], bool],
        step: timedelta = timedelta(minutes=1),
    ) -> RunStatus:
        """The run's status once `done`, skipping time `step` at a time (at most 2000)."""
        for _ in range(2000):
            status = await handle.query(PipelineWorkflow.get_status)
            if done(status):
                return status
            await self.env.sleep(step)
        raise AssertionError(f"never reached: {status.model_dump_json(indent=1)}")


async def act(
    handle: WorkflowHandle[Any, RunStatus],
    action: RunAction,
    by: str = "apikey:ops",
    role: Role = Role.OPERATOR,
) -> RunStatus:
    return await handle.execute_update(
        PipelineWorkflow.act, RunActionRequest(action=action, by=by, role=role)
    )


async def refused(handle: WorkflowHandle[Any, RunStatus], action: RunAction) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await act(handle, action)
    return str(getattr(err.value.cause, "message", err.value.cause))


def waiting(env: str, gate: str) -> Callable[[RunStatus], bool]:
    return lambda s: any(p.environment == env and p.waiting_on == gate for p in s.stages)


def stage(status: RunStatus, env: str) -> Any:
    return next(p for p in status.stages if p.environment == env)


async def test_gates_in_order_soak_from_verification_admin_approval_and_promote(
    env: WorkflowEnvironment,
) -> None:
    r = Run(env)
    stages = [
        {"environment": "dev", "auto_promote": True},
        {"environment": "staging", "auto_promote": True, "gates": {"soak": "2h"}},
        {
            "environment": "production",
            "gates": {"soak": "30m", "approval": {"role": "admin", "count": 1}},
        },
    ]
    async with r.worker():
        handle = await r.start(stages)
        status = await r.until(handle, waiting("production", "approval"))
        # Soak counts from the upstream verification, with a durable timer.
        dev, staging = stage(status, "dev"), stage(status, "staging")
        assert staging.released_at - dev.verified_at >= timedelta(hours=2)
        assert staging.released_at - dev.verified_at < timedelta(hours=2, minutes=2)
        assert stage(status, "production").why == "0 of 1 approvals by admin or above"
        # Soak (30 m) came before approval: production's gate began before it was waited.
        # An operator's approval is refused where the gate wants admin.
        assert "needs the role admin" in await refused(handle, RunAction.APPROVE)
        assert "not waiting for a promote" in await refused(handle, RunAction.PROMOTE)
        await act(handle, RunAction.APPROVE, by="apikey:boss", role=Role.ADMIN)
        # Without auto-promotion, an explicit promote after the gates.
        status = await r.until(handle, waiting("production", "promote"))
        assert stage(status, "production").approvals[0].by == "apikey:boss"
        await act(handle, RunAction.PROMOTE)
        result = await handle.result()
    assert result.state is RunState.SUCCEEDED, result.reason
    assert [v.environment for v in r.store.verified] == ["dev", "staging", "production"]
    # The unit of promotion: exactly the combination, in every environment.
    assert all(c == COMBO for _, c in r.store.released)
    prod = stage(result, "production")
    assert prod.released_at and prod.released_at - stage(result, "staging").verified_at >= (
        timedelta(minutes=30)
    )
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[PipelineWorkflow], data_converter=pydantic_data_converter)
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure


async def test_the_window_is_waited_for(env: WorkflowEnvironment) -> None:
    r = Run(env)
    window = {"days": ["tue"], "start": "09:00", "end": "10:00", "time_zone": "Asia/Tokyo"}
    stages = [{"environment": "dev", "auto_promote": True, "gates": {"window": window}}]
    async with r.worker():
        handle = await r.start(stages)
        status = await r.until(handle, waiting("dev", "window"))
        assert "tue 09:00-10:00 Asia/Tokyo" in (stage(status, "dev").why or "")
        result = await handle.result()
    released = stage(result, "dev").released_at
    assert released is not None
    assert Window.model_validate(window).seconds_until_open(released) == 0.0
    assert released - stage(result, "dev").started_at < timedelta(days=7)


async def test_fan_in_one_proceeds_and_all_is_blocked_when_an_upstream_fails(
    env: WorkflowEnvironment,
) -> None:
    r = Run(env)
    both = ["eu", "bad-us"]
    stages = [
        {"environment": "eu", "auto_promote": True},
        {"environment": "bad-us", "auto_promote": True, "requires": {"from": ["eu"]}},
        {"environment": "one", "auto_promote": True, "requires": {"from": both, "mode": "one"}},
        {"environment": "all", "auto_promote": True, "requires": {"from": both}},
    ]
    async with r.worker():
        result = await (await r.start(stages)).result()
    assert [p.state for p in result.stages] == [
        StageState.VERIFIED,
        StageState.FAILED,
        StageState.VERIFIED,
        StageState.BLOCKED,
    ]
    assert "not verified in bad-us" in (stage(result, "all").reason or "")
    assert result.state is RunState.FAILED


async def test_pause_resume_and_abort(env: WorkflowEnvironment) -> None:
    r = Run(env)
    stages = [
        {"environment": "dev", "auto_promote": True, "gates": {"soak": "10m"}},
        {"environment": "slow-staging", "auto_promote": True},
    ]
    async with r.worker():
        handle = await r.start(stages)
        await r.until(handle, waiting("dev", "soak"))
        paused = await act(handle, RunAction.PAUSE)
        assert paused.state is RunState.PAUSED
        await env.sleep(timedelta(hours=1))  # the soak is long over: paused, nothing moves
        status = await handle.query(PipelineWorkflow.get_status)
        assert stage(status, "dev").released_at is None
        await act(handle, RunAction.RESUME)
        # The next stage's release takes an hour: an abort stops it.
        await r.until(handle, lambda s: stage(s, "slow-staging").release_id is not None)
        await act(handle, RunAction.ABORT)
        result = await handle.result()
    assert result.state is RunState.ABORTED
    assert stage(result, "dev").state is StageState.VERIFIED
    assert stage(result, "slow-staging").state is StageState.FAILED


async def test_line_stop_and_hold_are_waited_out_and_shown(env: WorkflowEnvironment) -> None:
    r = Run(env)
    r.store.line_stop = "incident 42 (set by apikey:ops)"
    r.store.holds["staging"] = "api was rolled back to v1 by apikey:ops"
    stages = [
        {"environment": "dev", "auto_promote": True},
        {"environment": "staging", "auto_promote": True},
    ]
    async with r.worker():
        handle = await r.start(stages)
        status = await r.until(handle, waiting("dev", "line_stop"))
        assert "incident 42" in (stage(status, "dev").why or "")
        r.store.line_stop = None
        status = await r.until(handle, waiting("staging", "hold"))
        assert "rolled back to v1" in (stage(status, "staging").why or "")
        assert [e for e, _ in r.store.released] == ["dev"]
        del r.store.holds["staging"]
        result = await handle.result()
    assert result.state is RunState.SUCCEEDED


async def test_auto_rollback_to_the_last_verified_combination_with_guardrails(
    env: WorkflowEnvironment,
) -> None:
    stages = [
        {
            "environment": "staging",
            "auto_promote": True,
            "auto_rollback": True,
            "gates": {"analysis": FAILING},
        }
    ]
    # The analysis fails: back to the combination verified there before.
    r = Run(env)
    r.store.measured = 1.0
    r.store.verified.append(
        VerifiedRecord(
            pipeline="p", environment="staging", components=OLD, run_id="r0",
            verified_at=datetime(2026, 1, 1).astimezone(),
        )
    )  # fmt: skip
    async with r.worker():
        result = await (await r.start(stages)).result()
    assert result.state is RunState.ROLLED_BACK, result.reason
    assert r.store.released == [("staging", COMBO), ("staging", OLD)]
    assert r.store.verified[-1].components == OLD and r.store.verified[-1].rollback
    assert stage(result, "staging").rollback_release_id

    # Never a rollback of a rollback: the last verified combination was put back by one.
    async with r.worker():
        again = await (await r.start(stages, {"api": "v3", "web": "v5"})).result()
    assert again.state is RunState.FAILED
    assert "never a rollback of a rollback" in (again.reason or "")
    assert len(r.store.released) == 3

    # Nothing verified before: nothing to go back to.
    fresh = Run(env)
    fresh.store.measured = 1.0
    async with fresh.worker():
        first = await (await fresh.start(stages)).result()
    assert "nothing was verified there before" in (first.reason or "")
    assert fresh.store.released == [("staging", COMBO)]


async def test_a_long_wait_continues_as_new_carrying_the_run(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workflows.pipeline as module

    monkeypatch.setattr(module, "MAX_POLLS", 3)
    r = Run(env)
    r.store.holds["staging"] = "held by hand"
    stages = [
        {"environment": "dev", "auto_promote": True},
        {"environment": "staging", "auto_promote": True},
    ]
    worker = Worker(
        r.client,
        task_queue=r.queue,
        workflows=[PipelineWorkflow, FakeRelease],
        activities=r.store.activities(),
        workflow_runner=UnsandboxedWorkflowRunner(),  # sees the patched bound
    )
    async with worker:
        handle = await r.start(stages)
        await r.until(handle, waiting("staging", "hold"))
        first_run = (await handle.describe()).run_id
        await env.sleep(timedelta(minutes=5))  # more than 3 polls of 30 s
        assert (await handle.describe()).run_id != first_run
        status = await r.until(handle, waiting("staging", "hold"))
        assert stage(status, "dev").state is StageState.VERIFIED  # carried over
        del r.store.holds["staging"]
        result = await handle.result()
    assert result.state is RunState.SUCCEEDED
    assert [e for e, _ in r.store.released] == ["dev", "staging"]  # dev released once
