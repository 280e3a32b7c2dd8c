"""`/api/v1/components`: the registry of what the platform deploys."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from api.auth import Admin, Viewer
from api.deps import ComponentsDep
from api.openapi import errors
from api.schemas import InstanceView
from api.scope_checks import check, readable
from api.services import component_graph
from core.models.apikeys import Role
from core.models.components import Component, ComponentSpec
from core.models.names import EnvironmentName
from core.models.operations import RetireResult

router = APIRouter(prefix="/api/v1/components", tags=["components"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Component,
    responses=errors(409, 422),
)
async def create_component(
    spec: ComponentSpec, principal: Admin, service: ComponentsDep, response: Response
) -> Component:
    """Register a component; its name must be unique (409 otherwise). Its `depends_on` must
    name registered components and may not close a cycle (422, naming the cycle)."""
    check(principal, Role.ADMIN, spec.name, None)
    component = await service.create(principal, spec)
    response.headers["Location"] = f"/api/v1/components/{component.id}"
    return component


@router.get("", response_model=list[Component])
async def list_components(
    principal: Viewer, service: ComponentsDep, owner: Annotated[str | None, Query()] = None
) -> list[Component]:
    """Every registered component, by name, with its `health`; `runtime.env` values are shown
    to admins only."""
    may_read = readable(principal)
    return [c for c in await service.all(principal, owner) if may_read(c.name, None)]


DOT_MEDIA_TYPE = "text/vnd.graphviz"


# Declared before /{component_id}, which would otherwise take "graph" for an id.
@router.get(
    "/graph",
    response_model=component_graph.ComponentGraph,
    responses={200: {"content": {DOT_MEDIA_TYPE: {"schema": {"type": "string"}}}}},
)
async def dependency_graph(
    principal: Viewer,
    service: ComponentsDep,
    format: Annotated[Literal["json", "dot"], Query(description="`dot`: Graphviz DOT")] = "json",
) -> component_graph.ComponentGraph | Response:
    """The dependency graph: every component with the version it serves and its router
    endpoint per environment, and every dependency with its version constraint and, per
    environment, whether the serving version meets it (null: the dependency is not deployed
    there). `?format=dot` answers Graphviz DOT. Scoped callers see only what they may read."""
    graph = await component_graph.build(service.session, principal)
    if format == "dot":
        return Response(component_graph.to_dot(graph), media_type=DOT_MEDIA_TYPE)
    return graph


@router.get("/{component_id}", response_model=Component)
async def get_component(component_id: str, principal: Viewer, service: ComponentsDep) -> Component:
    """One component, by id or by name, with its `health` as the last health check found it
    (`unknown` while none of its instances runs); `runtime.env` values are shown to admins
    only."""
    return await service.get(principal, component_id)


@router.get("/{component_id}/instances", response_model=list[InstanceView])
async def list_instances(
    component_id: str, _: Viewer, service: ComponentsDep
) -> list[InstanceView]:
    """The component's instances as the worker last saw them: `running` or `dead`."""
    return await service.instances(component_id)


@router.put("/{component_id}", response_model=Component, responses=errors(409, 422))
async def replace_component(
    component_id: str, spec: ComponentSpec, principal: Admin, service: ComponentsDep
) -> Component:
    """Replace a component's definition; running instances keep running until redeployed.
    Its name cannot change, nor its runtime while a deployment of it runs (409); its
    `depends_on` may not close a cycle nor name an unregistered component (422)."""
    return await service.replace(principal, component_id, spec)


@router.delete(
    "/{component_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(409, 502)
)
async def delete_component(component_id: str, principal: Admin, service: ComponentsDep) -> Response:
    """Remove a component, after stopping its instances and routers everywhere; refused
    with 409 while a deployment of it runs or starts, or while other components depend on it
    (the answer names them)."""
    await service.delete(principal, component_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{component_id}/environments/{environment}",
    response_model=RetireResult,
    responses=errors(409, 502),
)
async def retire_from_environment(
    component_id: str,
    environment: Annotated[EnvironmentName, Path()],
    principal: Admin,
    service: ComponentsDep,
) -> RetireResult:
    """Stop the component's instances and router in one environment; the component stays.
    Refused with 409 while a deployment of it runs or starts."""
    return await service.retire(principal, component_id, environment)
