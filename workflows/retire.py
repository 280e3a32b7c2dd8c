"""`component-retire`: stop a component's instances and routers (one environment, or all)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.infrastructure.activities import InfrastructureActivities
    from core.contracts import RETIRE_WORKFLOW
    from core.models.operations import RetireRequest, RetireResult
    from workflows.retry import MUTATING


@workflow.defn(name=RETIRE_WORKFLOW)
class ComponentRetireWorkflow:
    """Stops everything a component runs; idempotent, so a repeat is harmless."""

    @workflow.run
    async def run(self, req: RetireRequest) -> RetireResult:
        where = req.environment or "every environment"
        return await workflow.execute_activity_method(
            InfrastructureActivities.retire,
            req,
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=MUTATING,
            summary=f"retire {req.component} from {where}",
        )
