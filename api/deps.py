"""Per-request dependencies: the store session, the Temporal gateway, the settings, and the
services built on them (one session per request, shared by every service it uses)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.gateway import Gateway
from api.services.components import ComponentService
from api.services.deployments import DeploymentService
from api.services.orchestration import WorkflowService
from core.settings import Settings


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for the request. Services commit explicitly before answering; anything not
    committed is rolled back when the session closes, so a failed request changes nothing."""
    async with request.app.state.sessions() as session:
        yield session


# `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, two
# thread hops per request just to read app.state.
async def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[AsyncSession, Depends(_session)]
GatewayDep = Annotated[Gateway, Depends(_gateway)]
SettingsDep = Annotated[Settings, Depends(_settings)]


async def _components(session: SessionDep, gateway: GatewayDep) -> ComponentService:
    return ComponentService(session, gateway)


async def _deployments(
    request: Request, session: SessionDep, gateway: GatewayDep, settings: SettingsDep
) -> DeploymentService:
    return DeploymentService(session, gateway, settings, request.scope.get("root_path", ""))


ComponentsDep = Annotated[ComponentService, Depends(_components)]
DeploymentsDep = Annotated[DeploymentService, Depends(_deployments)]


async def _workflows(
    request: Request,
    session: SessionDep,
    gateway: GatewayDep,
    settings: SettingsDep,
    deployments: DeploymentsDep,
    components: ComponentsDep,
) -> WorkflowService:
    root = request.scope.get("root_path", "")
    return WorkflowService(session, gateway, settings, deployments, components, root)


WorkflowsDep = Annotated[WorkflowService, Depends(_workflows)]
