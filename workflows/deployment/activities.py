"""How the deployment workflow calls its activities: timeouts, retries, cancellation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.analysis.activities import AnalysisActivities
    from activities.audit import AuditActivities, AuditEventRequest
    from activities.deployments import DeploymentActivities, RecordRequest
    from activities.infrastructure.activities import InfrastructureActivities
    from core.models.analysis import JudgeWindowRequest, MeasureRequest, MetricValue
    from core.models.deployments import DeploymentStatus
    from core.models.infrastructure import InstanceSetSpec, SetInfo, TargetState
    from core.models.operations import RemoveSetRequest, SetWeightsRequest, TargetRef
    from workflows.retry import MUTATING, QUICK


def _mutating(summary: str) -> dict[str, Any]:
    """Infrastructure steps: retried, bounded, and waited for when cancelled, so that a
    compensation never races the step it undoes."""
    return {
        "start_to_close_timeout": timedelta(minutes=3),
        "heartbeat_timeout": timedelta(seconds=10),  # beats every 2 s
        "retry_policy": MUTATING,
        "cancellation_type": workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        "summary": summary[:200],
    }


async def ensure_instances(spec: InstanceSetSpec) -> SetInfo:
    options = _mutating(f"ensure {spec.count} x {spec.component}@{spec.version} in {spec.slot}")
    # Starting may wait for Vault (R2C_VAULT_WAIT_SECONDS, at most 10 minutes) before the
    # instances' own start-up; heartbeats, not this bound, notice a lost worker.
    options["start_to_close_timeout"] = timedelta(minutes=15)
    return await workflow.execute_activity_method(
        InfrastructureActivities.ensure_instances, spec, **options
    )


async def set_weights(component: str, environment: str, weights: dict[str, int]) -> TargetState:
    shown = ", ".join(f"{slot} {w}%" for slot, w in weights.items())
    return await workflow.execute_activity_method(
        InfrastructureActivities.set_weights,
        SetWeightsRequest(component=component, environment=environment, weights=weights),
        **_mutating(f"route {shown}"),
    )


async def remove_set(component: str, environment: str, slot: str) -> None:
    await workflow.execute_activity_method(
        InfrastructureActivities.remove_set,
        RemoveSetRequest(component=component, environment=environment, slot=slot),
        **_mutating(f"remove the {slot} set"),
    )


async def read_state(component: str, environment: str) -> TargetState:
    return await workflow.execute_activity_method(
        InfrastructureActivities.read_state,
        TargetRef(component=component, environment=environment),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=QUICK,
        summary=f"read {component}/{environment}",
    )


async def measure(req: MeasureRequest) -> MetricValue:
    return await workflow.execute_activity_method(
        AnalysisActivities.measure,
        req,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=QUICK,
        summary=f"measure {req.metric.name} of {req.version}",
    )


# The judging activity (activities/analysis/judging.py), called by name: importing its class
# here would import the judge's statistics (scipy) wherever the workflows are imported.
JUDGE_ACTIVITY = "judge-window"


async def judge_window(req: JudgeWindowRequest) -> MetricValue:
    """One judgement of a judge metric; an error comes back as `MetricValue.error`."""
    result: MetricValue = await workflow.execute_activity(
        JUDGE_ACTIVITY,
        req,
        result_type=MetricValue,
        # Up to four reads of the router or Prometheus (5 s each) and the judge's tests.
        start_to_close_timeout=timedelta(seconds=60),
        retry_policy=QUICK,
        summary=f"judge {req.metric} of {req.version} against {req.baseline_version}"[:200],
    )
    return result


async def record(req: RecordRequest) -> None:
    status: DeploymentStatus = req.status
    await workflow.execute_activity_method(
        DeploymentActivities.record,
        req,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=QUICK,
        summary=f"record {status.state.value}",
    )


# An audit event must not hold a deployment up for long: after this, it is given up (the
# workflow logs a warning and notes it in the status).
AUDIT_GIVE_UP = timedelta(minutes=2)


async def record_audit(req: AuditEventRequest) -> bool:
    return await workflow.execute_activity_method(
        AuditActivities.record_event,
        req,
        start_to_close_timeout=timedelta(seconds=20),
        schedule_to_close_timeout=AUDIT_GIVE_UP,
        retry_policy=QUICK,
        summary=f"audit {req.action}",
    )
