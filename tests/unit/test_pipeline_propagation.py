"""A rollback propagated downstream on request, on the time-skipping server: each downstream
environment moved in pipeline order to the combination serving upstream, each a release,
each then held as a person's rollback holds it; the first step that fails ends the run and
leaves the later environments untouched; the environments downstream, as the API finds them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from core.models.pipelines import PipelineSpec, RunInput, RunState, RunStatus, StageState
from tests.unit.test_pipeline_policy_gate import PolicyStore
from tests.unit.test_pipeline_workflow import OLD, Run, stage


async def _propagate(r: Run, environments: list[str]) -> WorkflowHandle[Any, RunStatus]:
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    return await r.client.start_workflow(
        "pipeline",
        RunInput(
            pipeline="p",
            run_id=run_id,
            spec=PipelineSpec.model_validate(
                {"stages": [{"environment": e} for e in environments]}
            ),
            components=OLD,
            initiator="apikey:ops",
            propagate_from="dev",
        ),
        id=f"pipeline:p:{run_id}",
        task_queue=r.queue,
        result_type=RunStatus,
        execution_timeout=timedelta(days=1),
    )


async def test_a_rollback_moves_each_downstream_environment_in_order_and_holds_it(
    env: WorkflowEnvironment,
) -> None:
    r = Run(env, store=PolicyStore())
    async with r.worker():
        # No approval, no promote, no soak: a person asked for it.
        result = await (await _propagate(r, ["staging", "production"])).result()
    assert result.state is RunState.SUCCEEDED, result.reason
    assert result.propagated_from == "dev"
    assert r.store.released == [("staging", OLD), ("production", OLD)]
    for env_name in ("staging", "production"):
        p = stage(result, env_name)
        assert p.state is StageState.ROLLED_BACK and p.release_id
        assert "serving in dev" in (p.reason or "")
    assert [(v.environment, v.components, v.rollback) for v in r.store.verified] == [
        ("staging", OLD, False),
        ("production", OLD, False),
    ]
    assert all("propagated the rollback of dev" in (v.hold or "") for v in r.store.verified)


async def test_a_failed_step_stops_the_propagation_and_a_policy_refuses_before_moving(
    env: WorkflowEnvironment,
) -> None:
    r = Run(env, store=PolicyStore())
    async with r.worker():
        # The fake release of an environment named bad* ends rolled back.
        result = await (await _propagate(r, ["bad-staging", "production"])).result()
    assert result.state is RunState.FAILED
    assert stage(result, "bad-staging").state is StageState.FAILED
    assert stage(result, "production").state is StageState.BLOCKED
    assert [e for e, _ in r.store.released] == ["bad-staging"]
    assert r.store.verified == []

    refused = Run(env, store=PolicyStore())
    assert isinstance(refused.store, PolicyStore)
    refused.store.refusing["staging"] = "policy staging.v1 forbids deploying api: rule y"
    async with refused.worker():
        result = await (await _propagate(refused, ["staging", "production"])).result()
    assert result.state is RunState.FAILED and "rule y" in (result.reason or "")
    assert refused.store.released == []


def test_downstream_follows_requires_transitively_in_pipeline_order() -> None:
    spec = PipelineSpec.model_validate(
        {
            "stages": [
                {"environment": "dev"},
                {"environment": "qa", "requires": {"from": ["dev"]}},
                {"environment": "perf", "requires": {"from": ["dev"]}},
                {"environment": "staging", "requires": {"from": ["qa", "perf"], "mode": "one"}},
                {"environment": "production"},
                {"environment": "sandbox", "requires": {"from": ["dev"]}},
            ]
        }
    )
    assert spec.downstream("qa") == ["staging", "production"]
    assert spec.downstream("dev") == ["qa", "perf", "staging", "production", "sandbox"]
    assert spec.downstream("production") == []
