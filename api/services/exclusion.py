"""Deployments and retires of one component exclude each other.

Each side raises its own flag and checks the other's inside the component's lock
(`core.db.components.lock`), so no check goes stale before the flag that answers it is up:

- a deployment's flag is its row in the store, committed (state `pending`) under the lock
  before its workflow starts; the workflow id `deploy:<component>:<environment>` then keeps
  a second deployment of the target out;
- a retire's flag is its running workflow, `retire:<component>:<environment or *>`, started
  under the lock.

So a deployment start refuses (409) while a retire of its target, or of every environment,
runs; a retire, a deletion and a runtime change refuse (409) while a deployment of the
component runs or is starting, whichever of two concurrent requests takes the lock first.
"Does it run?" is answered by describing the workflow, which is strongly consistent; the
visibility list, which lags, is asked only for deployments started outside the API (from the
Temporal UI), which have no row until they record one.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api.gateway import Gateway
from core.contracts import COMPONENT, DEPLOYMENT_WORKFLOW, ENVIRONMENT
from core.db import deployments
from core.db.tables import utcnow
from core.errors import ConflictError
from core.ids import deployment_workflow_id, retire_workflow_id

# A row with no run id is a deployment between its commit and its start; one older than
# this was left by an API that died there, and blocks nothing.
START_GRACE = timedelta(minutes=2)


async def running_deployments(
    session: AsyncSession, gateway: Gateway, component: str, environment: str | None = None
) -> list[str]:
    """Deployments of the component (in `environment`, or anywhere) that run or are starting."""
    busy: list[str] = []
    checked: set[str] = set()
    for row in await deployments.unfinished(session, component, environment):
        checked.add(row.workflow_id)
        if row.run_id is None:
            if utcnow() - row.created_at < START_GRACE:
                busy.append(row.id)
        elif await gateway.is_running(row.workflow_id, row.run_id):
            busy.append(row.id)
    query = f"WorkflowType = '{DEPLOYMENT_WORKFLOW}' AND {COMPONENT.name} = '{component}'"
    if environment is not None:
        query += f" AND {ENVIRONMENT.name} = '{environment}'"
    candidates = set(await gateway.ids(query + " AND ExecutionStatus = 'Running'"))
    if environment is not None:
        candidates.add(deployment_workflow_id(component, environment))
    for workflow_id in sorted(candidates - checked):
        if await gateway.is_running(workflow_id):
            busy.append(workflow_id)
    return busy


async def refuse_while_deploying(
    session: AsyncSession,
    gateway: Gateway,
    component: str,
    environment: str | None = None,
    doing: str = "change it",
) -> None:
    """409 when a deployment of the component runs or is starting."""
    running = await running_deployments(session, gateway, component, environment)
    if running:
        raise ConflictError(
            f"component {component!r} has a running deployment ({running[0]}): cannot {doing} now",
            hint=f"wait for it to finish or abort it: POST /api/v1/deployments/{running[0]}/abort",
            running=running,
        )


async def refuse_while_retiring(gateway: Gateway, component: str, environment: str) -> None:
    """409 when a retire of the target, or of every environment of the component, runs."""
    for workflow_id in (
        retire_workflow_id(component, environment),
        retire_workflow_id(component, None),
    ):
        if await gateway.is_running(workflow_id):
            raise ConflictError(
                f"component {component!r} is being retired ({workflow_id}): cannot deploy it now",
                hint=f"wait for GET /api/v1/orchestration/workflows/{workflow_id} to complete, "
                "then deploy again",
                retiring=workflow_id,
            )
