"""`/api/v1/components`: the registry of what the platform deploys."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import ValidationError
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError

from api.audit_trail import commit_with_audit
from api.auth import Admin, Viewer
from api.deps import SessionDep, SettingsDep, TemporalDep
from api.errors import temporal_error
from api.schemas import InstanceView
from core.contracts import COMPONENT, DEPLOYMENT_WORKFLOW, INITIATOR, RETIRE_WORKFLOW
from core.db import components as store
from core.errors import (
    ConflictError,
    DependencyUnavailableError,
    InfrastructureError,
    InvalidInputError,
)
from core.models.apikeys import Principal
from core.models.components import Component, ComponentSpec
from core.models.operations import RetireRequest, RetireResult
from core.settings import Settings

router = APIRouter(prefix="/api/v1/components", tags=["components"])

RETIRE_WAIT_SECONDS = 60


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Component)
async def create_component(
    spec: ComponentSpec, principal: Admin, session: SessionDep, response: Response
) -> Component:
    """Register a component; its name must be unique (409 otherwise)."""
    component = await store.create(session, spec)
    await commit_with_audit(session, principal, "component.created", component.name)
    response.headers["Location"] = f"/api/v1/components/{component.id}"
    return component


@router.get("", response_model=list[Component])
async def list_components(
    _: Viewer, session: SessionDep, owner: Annotated[str | None, Query()] = None
) -> list[Component]:
    """Every registered component, by name."""
    return await store.list_all(session, owner=owner)


@router.get("/{component_id}", response_model=Component)
async def get_component(component_id: str, _: Viewer, session: SessionDep) -> Component:
    """One component, by id or by name."""
    return store.to_model(await store.get_row(session, component_id))


@router.get("/{component_id}/instances", response_model=list[InstanceView])
async def list_instances(component_id: str, _: Viewer, session: SessionDep) -> list[InstanceView]:
    """The component's instances as the worker last saw them: `running` or `dead`."""
    row = await store.get_row(session, component_id)
    return [
        InstanceView.model_validate(i, from_attributes=True)
        for i in await store.instances(session, row.id)
    ]


@router.put("/{component_id}", response_model=Component)
async def replace_component(
    component_id: str, spec: ComponentSpec, principal: Admin, session: SessionDep
) -> Component:
    """Replace a component's definition; running instances keep running until redeployed."""
    component = await store.replace(session, component_id, spec)
    await commit_with_audit(
        session, principal, "component.replaced", component.name, revision=component.revision
    )
    return component


@router.delete("/{component_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_component(
    component_id: str,
    principal: Admin,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> Response:
    """Remove a component, after stopping its instances and routers everywhere; refused
    with 409 while a deployment of it is running."""
    row = await store.get_row(session, component_id)
    await _refuse_while_deploying(temporal, row.name)
    await _retire(temporal, settings, principal, row.name, None)
    await store.delete(session, component_id)
    await commit_with_audit(session, principal, "component.deleted", row.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{component_id}/environments/{environment}", response_model=RetireResult)
async def retire_from_environment(
    component_id: str,
    environment: str,
    principal: Admin,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> RetireResult:
    """Stop the component's instances and router in one environment; the component stays."""
    row = await store.get_row(session, component_id)
    await _refuse_while_deploying(temporal, row.name)
    result = await _retire(temporal, settings, principal, row.name, environment)
    await commit_with_audit(
        session, principal, "component.retired", row.name, environment=environment
    )
    return result


async def _retire(
    temporal: Client,
    settings: Settings,
    principal: Principal,
    name: str,
    environment: str | None,
) -> RetireResult:
    """Run `component-retire` and wait for it: the store changes only once nothing runs."""
    try:
        request = RetireRequest(component=name, environment=environment)
    except ValidationError as err:
        raise InvalidInputError(f"invalid environment {environment!r}") from err
    where = environment or "all"
    try:
        handle: WorkflowHandle[Any, RetireResult] = await temporal.start_workflow(
            RETIRE_WORKFLOW,
            request,
            id=f"{RETIRE_WORKFLOW}-{name}-{where}",
            task_queue=settings.task_queue,
            result_type=RetireResult,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(INITIATOR, principal.initiator),
                    SearchAttributePair(COMPONENT, name),
                ]
            ),
            static_summary=f"retire {name} from {where}",
            rpc_timeout=timedelta(seconds=10),
        )
        async with asyncio.timeout(RETIRE_WAIT_SECONDS):
            return await handle.result()
    except RPCError as err:
        raise temporal_error(err, "retire workflow") from err
    except TimeoutError:
        raise DependencyUnavailableError(
            f"the instances of {name!r} were not stopped within {RETIRE_WAIT_SECONDS}s; "
            "nothing was removed from the registry",
            hint="check that a worker runs, then repeat the request",
        ) from None
    except WorkflowFailureError as err:
        raise InfrastructureError(
            f"stopping the instances of {name!r} failed: {err.cause}"
        ) from err


async def _refuse_while_deploying(temporal: Client, name: str) -> None:
    running = await _running_deployments(temporal, name)
    if running:
        raise ConflictError(
            f"component {name!r} has a running deployment: {running[0]}",
            hint="wait for it to finish or abort it (POST /api/v1/deployments/{id}/abort)",
            running=running,
        )


async def _running_deployments(temporal: Client, name: str) -> list[str]:
    query = (
        f"WorkflowType = '{DEPLOYMENT_WORKFLOW}' AND {COMPONENT.name} = '{name}' "
        "AND ExecutionStatus = 'Running'"
    )
    try:
        return [
            e.id
            async for e in temporal.list_workflows(
                query, limit=10, rpc_timeout=timedelta(seconds=10)
            )
        ]
    except RPCError as err:
        raise temporal_error(err, "deployment list") from err
