"""Activities over the infrastructure provider; they also mirror what runs into the store, so
the API and the health check see the instances without asking the provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import domain_errors
from activities.infrastructure.component_cache import ComponentCache
from activities.infrastructure.provider import InfrastructureProvider
from core.configuration_env import (
    NO_CONFIGURATION,
    InstanceConfig,
    SecretsNeededError,
    resolve,
)
from core.db import components as component_store
from core.db import configuration as config_store
from core.errors import DependencyUnavailableError
from core.models.components import Component
from core.models.infrastructure import InstanceSetSpec, InstanceState, SetInfo, TargetState
from core.models.operations import (
    RemoveSetRequest,
    RetireRequest,
    RetireResult,
    SetWeightsRequest,
    TargetRef,
)
from core.secrets import SecretStore

HEARTBEAT_EVERY = 2.0
DEFAULT_VAULT_WAIT = 300.0
# Pauses between attempts to reach Vault: short at first (a restart takes seconds), then
# at most this long.
VAULT_RETRY_FIRST = 0.5
VAULT_RETRY_MAX = 10.0


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
    """Bound to one provider, the store, and the secret store (Vault) that holds the secret
    values of the configuration instances are started with."""

    def __init__(
        self,
        provider: InfrastructureProvider,
        sessions: async_sessionmaker[Any],
        secrets: SecretStore,
        vault_wait_seconds: float = DEFAULT_VAULT_WAIT,
    ):
        self.provider = provider
        self.sessions = sessions
        self.secrets = secrets
        self.vault_wait_seconds = vault_wait_seconds
        self.components = ComponentCache(self._component)

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

    async def _revision(self, spec: InstanceSetSpec) -> int | None:
        """The revision asked for, else the one the slot's set was started with, else None."""
        if spec.config_revision is not None:
            return spec.config_revision
        state = await self.provider.state(spec.component, spec.environment)
        running = [s.config_revision for s in state.sets if s.slot == spec.slot]
        return running[0] if running else None

    async def _runs_already(self, spec: InstanceSetSpec, revision: int) -> bool:
        """Whether the slot runs `spec.count` live instances of the version and revision."""
        state = await self.provider.state(spec.component, spec.environment)
        for found in state.sets:
            if found.slot == spec.slot:
                live = [i for i in found.instances if i.state == InstanceState.RUNNING]
                return (
                    found.version == spec.version
                    and found.config_revision == revision
                    and len(live) >= spec.count
                )
        return False

    async def _ensure(self, component: Component, spec: InstanceSetSpec) -> SetInfo:
        """Resolve the set's configuration, secret values included, then ensure the set.

        Vault unreachable: wait up to `vault_wait_seconds` (the caller heartbeats), so a Vault
        restarted mid-rollout costs a pause, not a failure, and no instance starts without
        its secrets. A set that already runs what is asked (a compensation restoring it, a
        scale-down) needs no secret: it is ensured at once, without them."""
        revision = await self._revision(spec)
        if revision is None:
            return await self.provider.ensure_instances(component, spec, NO_CONFIGURATION)
        async with self.sessions() as session:
            entries = await config_store.effective(
                session, spec.component, spec.environment, at_revision=revision
            )
        deadline = time.monotonic() + self.vault_wait_seconds
        pause = VAULT_RETRY_FIRST
        while True:
            try:
                config = await resolve(revision, entries, self.secrets)
            except DependencyUnavailableError as err:
                if await self._runs_already(spec, revision):
                    try:
                        unread = InstanceConfig(revision=revision, resolved=False)
                        return await self.provider.ensure_instances(component, spec, unread)
                    except SecretsNeededError:
                        pass  # an instance died meanwhile: its replacement needs them
                left = deadline - time.monotonic()
                if left <= 0:
                    # Final: a retry would only wait as long again, past the bound set.
                    raise ApplicationError(
                        f"{err.message}; waited {self.vault_wait_seconds:.0f}s"
                        f" (R2C_VAULT_WAIT_SECONDS) for it to start {spec.slot} of"
                        f" {spec.component} in {spec.environment}",
                        {"hint": err.hint},
                        type=err.error_type,
                        non_retryable=True,
                    ) from err
                activity.logger.warning(
                    "waiting for Vault to read the secrets of %s/%s (%.0fs left)",
                    spec.component,
                    spec.environment,
                    left,
                )
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, VAULT_RETRY_MAX)
                continue
            return await self.provider.ensure_instances(component, spec, config)

    @activity.defn(name="ensure-instances")
    async def ensure_instances(self, spec: InstanceSetSpec) -> SetInfo:
        with domain_errors():
            component = await self.components.get(spec.component, fresh=True)
            async with heartbeating():
                result = await self._ensure(component, spec)
            await self.mirror(spec.component, spec.environment)
            return result

    @activity.defn(name="set-weights")
    async def set_weights(self, req: SetWeightsRequest) -> TargetState:
        with domain_errors():
            # A spec read within the last seconds will do (component_cache.py). Weights change
            # no instance row: the store's mirror stays as it is (rewriting it on every weight
            # step was most of a canary's cost in the worker).
            component = await self.components.get(req.component)
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
