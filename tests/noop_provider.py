"""A NO-OP infrastructure provider, named as the fake it is: it remembers sets and weights in
memory and starts nothing. For tests of orchestration (and the deployment benchmark), where
starting real processes would only add time; the local provider has its own real tests."""

from __future__ import annotations

from core.configuration_env import NO_CONFIGURATION, InstanceConfig
from core.models.components import Component
from core.models.infrastructure import InstanceSetSpec, SetInfo, TargetState


class NoopProvider:
    """Remembers weights and sets in memory and does nothing else."""

    def __init__(self) -> None:
        self.targets_: dict[tuple[str, str], TargetState] = {}

    def _get(self, component: str, environment: str) -> TargetState:
        key = (component, environment)
        if key not in self.targets_:
            self.targets_[key] = TargetState(component=component, environment=environment,
                                             endpoint="http://noop")  # fmt: skip
        return self.targets_[key]

    async def ensure_instances(self, component: Component, spec: InstanceSetSpec,
                               config: InstanceConfig = NO_CONFIGURATION) -> SetInfo:  # fmt: skip
        state = self._get(component.name, spec.environment)
        info = SetInfo(slot=spec.slot, version=spec.version, desired=spec.count,
                       weight=state.weights.get(spec.slot, 0), instances=[],
                       config_revision=config.revision)  # fmt: skip
        state.sets = [s for s in state.sets if s.slot != spec.slot] + [info]
        return info

    async def set_weights(self, component: Component, environment: str,
                          weights: dict[str, int]) -> TargetState:  # fmt: skip
        state = self._get(component.name, environment)
        state.weights = dict(weights)
        return state

    async def state(self, component: str, environment: str) -> TargetState:
        return self._get(component, environment)

    async def remove_set(self, component: str, environment: str, slot: str) -> None:
        state = self._get(component, environment)
        state.sets = [s for s in state.sets if s.slot != slot]
        state.weights.pop(slot, None)

    async def retire(self, component: str, environment: str | None = None) -> None:
        self.targets_ = {k: v for k, v in self.targets_.items() if k[0] != component}

    async def environments(self, component: str) -> list[str]:
        return [e for c, e in self.targets_ if c == component]

    async def targets(self) -> list[tuple[str, str]]:
        return list(self.targets_)
