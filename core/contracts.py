"""Workflow names and contracts: what the API may know about workflows without importing them.

The API validates a start request against `input_model` and starts the workflow by name on
`task_queue`; the worker registers the workflow under the same name, which is also what the
Temporal Web UI shows and accepts in "Start workflow".
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel
from temporalio.common import SearchAttributeKey

from core.models.apikeys import Role
from core.models.deployments import DeploymentRequest
from core.models.health import HealthCheckInput
from core.models.operations import RetireRequest

HEALTH_CHECK_WORKFLOW = "component-health-check"
RETIRE_WORKFLOW = "component-retire"
DEPLOYMENT_WORKFLOW = "deployment"

# Search attributes: registered on the embedded server at start, and by the worker on any
# other server, so the API can filter on them.
INITIATOR = SearchAttributeKey.for_keyword("Initiator")
COMPONENT = SearchAttributeKey.for_keyword("Component")
ENVIRONMENT = SearchAttributeKey.for_keyword("Environment")
STRATEGY = SearchAttributeKey.for_keyword("Strategy")
DEPLOYMENT_PHASE = SearchAttributeKey.for_keyword("DeploymentPhase")
SEARCH_ATTRIBUTES = (INITIATOR, COMPONENT, ENVIRONMENT, STRATEGY, DEPLOYMENT_PHASE)

STATUS_QUERY = "status"


@dataclass(frozen=True)
class WorkflowContract:
    """A workflow type the API can start."""

    name: str
    input_model: type[BaseModel]
    description: str
    role: Role = Role.OPERATOR
    """The role a caller needs to start it: the same as the dedicated route that does it."""


WORKFLOW_CONTRACTS: dict[str, WorkflowContract] = {
    c.name: c
    for c in (
        WorkflowContract(
            name=HEALTH_CHECK_WORKFLOW,
            input_model=HealthCheckInput,
            description="Probe the health endpoint of every component that has running instances",
        ),
        WorkflowContract(
            name=DEPLOYMENT_WORKFLOW,
            input_model=DeploymentRequest,
            description="Deploy a version of a component with a rolling, blue-green or canary"
            " strategy (the same as POST /api/v1/deployments)",
        ),
        WorkflowContract(
            name=RETIRE_WORKFLOW,
            input_model=RetireRequest,
            description="Stop a component's instances and router, in one environment or all"
            " (the same as DELETE /api/v1/components/{id}/environments/{env})",
            role=Role.ADMIN,
        ),
    )
}
