"""`/api/v1/components`: the registry of what the platform deploys."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from temporalio.client import Client
from temporalio.service import RPCError

from api.audit_trail import commit_with_audit
from api.auth import Admin, Viewer
from api.deps import SessionDep, TemporalDep
from api.errors import temporal_error
from core.contracts import COMPONENT, DEPLOYMENT_WORKFLOW
from core.db import components as store
from core.errors import ConflictError
from core.models.components import Component, ComponentSpec

router = APIRouter(prefix="/api/v1/components", tags=["components"])


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
    component_id: str, principal: Admin, session: SessionDep, temporal: TemporalDep
) -> Response:
    """Remove a component; refused with 409 while a deployment of it is running."""
    row = await store.get_row(session, component_id)
    running = await _running_deployments(temporal, row.name)
    if running:
        raise ConflictError(
            f"component {row.name!r} has a running deployment: {running[0]}",
            hint="wait for it to finish or cancel it (DELETE /api/v1/orchestration/workflows/{id})",
            running=running,
        )
    await store.delete(session, component_id)
    await commit_with_audit(session, principal, "component.deleted", row.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
