"""Activities over the infrastructure provider; they also mirror what runs into the store, so
the API and the health check see the instances without asking the provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity

from activities.errors import domain_errors
from activities.infrastructure.provider import InfrastructureProvider
from core.db import components as component_store
from core.models.components import Component
from core.models.infrastructure import InstanceSetSpec, SetInfo, TargetState
from core.models.operations import (
    RemoveSetRequest,
    RetireRequest,
    RetireResult,
    SetWeightsRequest,
    TargetRef,
)

HEARTBEAT_EVERY = 2.0


@asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a long step runs, so cancellation and worker loss are noticed."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


class InfrastructureActivities:
    """Bound to one provider and the store."""

    def __init__(self, provider: InfrastructureProvider, sessions: async_sessionmaker[Any]):
        self.provider = provider
        self.sessions = sessions

    async def _component(self, name: str) -> Component:
        async with self.sessions() as session:
            return component_store.to_model(await component_store.get_row(session, name))

    async def mirror(self, component: str, environment: str) -> TargetState:
        """Replace the store's instance rows of the target with what the provider reports."""
        state = await self.provider.state(component, environment)
        async with self.sessions() as session:
            await component_store.mirror_instances(session, state)
            await session.commit()
        return state

    @activity.defn(name="ensure-instances")
    async def ensure_instances(self, spec: InstanceSetSpec) -> SetInfo:
        with domain_errors():
            component = await self._component(spec.component)
            async with heartbeating():
                result = await self.provider.ensure_instances(component, spec)
            await self.mirror(spec.component, spec.environment)
            return result

    @activity.defn(name="set-weights")
    async def set_weights(self, req: SetWeightsRequest) -> TargetState:
        with domain_errors():
            component = await self._component(req.component)
            # Weights change no instance row: the store's mirror stays as it is (rewriting it
            # on every weight step was most of a canary's cost in the worker).
            return await self.provider.set_weights(component, req.environment, req.weights)

    @activity.defn(name="read-infrastructure")
    async def read_state(self, req: TargetRef) -> TargetState:
        with domain_errors():
            return await self.mirror(req.component, req.environment)

    @activity.defn(name="remove-instance-set")
    async def remove_set(self, req: RemoveSetRequest) -> None:
        with domain_errors():
            async with heartbeating():
                await self.provider.remove_set(req.component, req.environment, req.slot)
            await self.mirror(req.component, req.environment)

    @activity.defn(name="retire-component")
    async def retire(self, req: RetireRequest) -> RetireResult:
        with domain_errors():
            envs = (
                [req.environment]
                if req.environment
                else await self.provider.environments(req.component)
            )
            async with heartbeating():
                await self.provider.retire(req.component, req.environment)
            for env in envs:
                await self.mirror(req.component, env)
            return RetireResult(component=req.component, environments=envs)
