"""The interface every infrastructure provider implements (local processes now, Kubernetes
later). Declarative and idempotent: each call says what should be, and repeating it after a
retry or a crash changes nothing. Activities call providers; workflows never do."""

from __future__ import annotations

from typing import Protocol

from core.configuration_env import NO_CONFIGURATION, InstanceConfig
from core.models.components import Component
from core.models.infrastructure import InstanceSetSpec, SetInfo, TargetState


class InfrastructureProvider(Protocol):
    async def ensure_instances(
        self,
        component: Component,
        spec: InstanceSetSpec,
        config: InstanceConfig = NO_CONFIGURATION,
    ) -> SetInfo:
        """Make `spec.slot` run `spec.count` healthy instances of `spec.version`, each with
        `config.variables` in its environment. A set running another version or another
        configuration revision is replaced (refused while it serves traffic). Only the
        revision is kept (`SetInfo.config_revision`), never the variables: they hold secrets.
        With `config.resolved` False (Vault away) a set that already runs what is asked is
        kept as it is; anything that would start an instance raises `SecretsNeededError`."""
        ...

    async def set_weights(
        self, component: Component, environment: str, weights: dict[str, int]
    ) -> TargetState:
        """Route traffic across slots by weight (0-100, summing to 100, or all 0 for no
        traffic), atomically. An empty table is refused: it names no slot at all."""
        ...

    async def state(self, component: str, environment: str) -> TargetState:
        """What runs: instances with their health, the weights, the endpoint URL, and where
        the router reports its own status and metrics (`admin_endpoint`, `metrics_url`)."""
        ...

    async def remove_set(self, component: str, environment: str, slot: str) -> None:
        """Stop a slot's instances once no traffic goes to it."""
        ...

    async def retire(self, component: str, environment: str | None = None) -> None:
        """Stop everything of the component (in one environment, or in all) and its router."""
        ...

    async def environments(self, component: str) -> list[str]:
        """The environments where the component has anything running."""
        ...

    async def targets(self) -> list[tuple[str, str]]:
        """Every (component, environment) with anything running."""
        ...
