"""A NO-OP infrastructure provider SHARED BY PROCESSES, named as the fake it is: like
tests/noop_provider.py it starts nothing, but it keeps each target's state (sets and weights)
in a JSON file under a directory, so that several worker processes (and a worker restarted
after a SIGKILL) see one state, as they would see one real infrastructure.

One file per target, `<component>@<environment>.json`, replaced atomically (`os.replace`);
every read-modify-write holds an exclusive `fcntl` lock on the target's `.lock` file, so two
workers changing one target never lose an update, and a worker killed mid-write leaves either
the old file or the new one. Names are the API's validated component and environment names
(lowercase letters, digits, `-`): safe as file names."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from core.configuration_env import NO_CONFIGURATION, InstanceConfig
from core.models.components import Component
from core.models.infrastructure import InstanceSetSpec, SetInfo, TargetState

T = TypeVar("T")
SEPARATOR = "@"  # not allowed in either name


class SharedNoopProvider:
    """Remembers weights and sets in files under `root` and does nothing else."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _file(self, component: str, environment: str) -> Path:
        for name in (component, environment):
            if not name or SEPARATOR in name or "/" in name or name.startswith("."):
                raise ValueError(f"not a target name: {name!r}")
        return self.root / f"{component}{SEPARATOR}{environment}.json"

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, component: str, environment: str) -> TargetState:
        path = self._file(component, environment)
        try:
            return TargetState.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return TargetState(component=component, environment=environment,
                               endpoint="http://noop")  # fmt: skip

    def _write(self, state: TargetState) -> None:
        path = self._file(state.component, state.environment)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(state.model_dump_json())
        os.replace(tmp, path)

    def _change_now(
        self, component: str, environment: str, change: Callable[[TargetState], T]
    ) -> T:
        with self._locked(self._file(component, environment)):
            state = self._read(component, environment)
            result = change(state)
            self._write(state)
            return result

    async def _change(
        self, component: str, environment: str, change: Callable[[TargetState], T]
    ) -> T:
        # flock blocks: off the event loop, which serves the worker's other activities.
        return await asyncio.to_thread(self._change_now, component, environment, change)

    async def ensure_instances(self, component: Component, spec: InstanceSetSpec,
                               config: InstanceConfig = NO_CONFIGURATION) -> SetInfo:  # fmt: skip
        def change(state: TargetState) -> SetInfo:
            info = SetInfo(slot=spec.slot, version=spec.version, desired=spec.count,
                           weight=state.weights.get(spec.slot, 0), instances=[],
                           config_revision=config.revision)  # fmt: skip
            state.sets = [s for s in state.sets if s.slot != spec.slot] + [info]
            return info

        return await self._change(component.name, spec.environment, change)

    async def set_weights(self, component: Component, environment: str,
                          weights: dict[str, int]) -> TargetState:  # fmt: skip
        def change(state: TargetState) -> TargetState:
            state.weights = dict(weights)
            return state.model_copy(deep=True)

        return await self._change(component.name, environment, change)

    async def state(self, component: str, environment: str) -> TargetState:
        return await asyncio.to_thread(self._read, component, environment)

    async def remove_set(self, component: str, environment: str, slot: str) -> None:
        def change(state: TargetState) -> None:
            state.sets = [s for s in state.sets if s.slot != slot]
            state.weights.pop(slot, None)

        await self._change(component, environment, change)

    async def retire(self, component: str, environment: str | None = None) -> None:
        def remove() -> None:
            for env in self._environments(component):
                if environment is None or env == environment:
                    path = self._file(component, env)
                    with self._locked(path):
                        path.unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    def _targets(self) -> list[tuple[str, str]]:
        found = []
        for path in sorted(self.root.glob(f"*{SEPARATOR}*.json")):
            component, environment = path.stem.split(SEPARATOR, 1)
            found.append((component, environment))
        return found

    def _environments(self, component: str) -> list[str]:
        return [e for c, e in self._targets() if c == component]

    async def environments(self, component: str) -> list[str]:
        return await asyncio.to_thread(self._environments, component)

    async def targets(self) -> list[tuple[str, str]]:
        return await asyncio.to_thread(self._targets)
