"""The local provider: component instances as processes behind one router per target.

Every operation takes the target's lock, reads its state from disk, brings the processes and
the routing table to what was asked, and saves the state again; so a retry after a crash
finds what the crashed attempt did and finishes it, never starting anything twice.
Instances and routers run in their own sessions and outlive the worker that started them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from activities.infrastructure.local import processes
from activities.infrastructure.local.config_files import config_path, remove_config, write_config
from activities.infrastructure.local.launch import (
    dependency_variable,
    instance_argv,
    instance_env,
)
from activities.infrastructure.local.orphans import kill_orphans
from activities.infrastructure.local.paths import child
from activities.infrastructure.local.ports import DEFAULT_RANGE, PortAllocator
from activities.infrastructure.local.routers import Routers
from activities.infrastructure.local.state import (
    InstanceRecord,
    SetRecord,
    TargetFiles,
    TargetRecord,
)
from core.configuration_env import NO_CONFIGURATION, InstanceConfig, SecretsNeededError
from core.db.tables import utcnow
from core.errors import ConflictError, InfrastructureError, InvalidInputError
from core.ids import instance_id
from core.models.components import Component, RuntimeSpec
from core.models.infrastructure import (
    InstanceInfo,
    InstanceSetSpec,
    InstanceState,
    SetInfo,
    TargetState,
)
from core.models.names import COMPONENT_PATTERN, ENVIRONMENT_PATTERN

log = logging.getLogger("r2c.infra.local")

STARTUP_TIMEOUT = 60.0
DRAIN_TIMEOUT = 10.0


class LocalProvider:
    """Implements `InfrastructureProvider` with local processes and a weighted router."""

    def __init__(
        self,
        home: Path,
        http: httpx.AsyncClient,
        port_range: tuple[int, int] = DEFAULT_RANGE,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self.root = home.resolve() / "infra"
        self.ports = PortAllocator(self.root, port_range)
        self.routers = Routers(self.ports, http)
        self.http = http
        self.startup_timeout = startup_timeout

    def files(self, component: str, environment: str) -> TargetFiles:
        """The target's files; InvalidInputError if a name would lead outside the root."""
        return TargetFiles(self.root, component, environment)

    # ------------------------------------------------------------------ interface

    async def ensure_instances(
        self,
        component: Component,
        spec: InstanceSetSpec,
        config: InstanceConfig = NO_CONFIGURATION,
    ) -> SetInfo:
        files = self.files(component.name, spec.environment)
        async with files.locked() as rec:
            kill_orphans(files.dir, _known_sessions(rec))
            current = rec.sets.get(spec.slot)
            if not config.resolved and not _runs(current, spec, config):
                raise SecretsNeededError(
                    f"{spec.slot} of {component.name} in {spec.environment} needs instances "
                    f"started with configuration revision {config.revision}, whose secrets "
                    "Vault cannot give now",
                    hint="start Vault (or check VAULT_URL) and retry",
                )
            await self.routers.ensure(component, files, rec)
            if current is not None and (
                current.version != spec.version or current.config_revision != config.revision
            ):
                # Another revision is another set, as another version is: every instance of a
                # set runs the same configuration.
                if rec.weights.get(spec.slot, 0) > 0:
                    raise ConflictError(
                        f"slot {spec.slot!r} serves traffic with version {current.version}"
                        f" (configuration revision {_shown(current.config_revision)})",
                        hint="shift its weight to another slot before changing its version "
                        "or configuration",
                    )
                await self._stop(current.instances)
                current = None
            if current is None:
                current = rec.sets[spec.slot] = SetRecord(
                    version=spec.version, desired=0, config_revision=config.revision
                )
            if component.runtime.config_file is None:
                remove_config(files, spec.slot)
            elif config.resolved:
                write_config(files, spec.slot, config)
            # None: a set grown back or healed keeps the overrides it was started with.
            if spec.env_overrides is not None:
                current.env_overrides = dict(spec.env_overrides)
            current.desired, current.key = spec.count, spec.key
            self._forget_dead(current)
            surplus = current.instances[spec.count :]
            current.instances = current.instances[: spec.count]
            while len(current.instances) < spec.count:
                current.instances.append(
                    self._start_instance(component, files, rec, spec.slot, current, config)
                )
                files.save(rec)  # recorded at once: a crash now must not orphan it
            await self._wait_healthy(component.runtime, files, rec, current)
            await self.routers.publish(component, files, rec)
            await self._drain_and_stop(files, rec, surplus)
            return self._set_info(spec.slot, current, rec, files, healthy=None)

    async def set_weights(
        self, component: Component, environment: str, weights: dict[str, int]
    ) -> TargetState:
        if not weights:
            raise InvalidInputError(
                "an empty weight table routes nothing and says so for no slot",
                hint='give each slot its weight; {"blue": 0} sends no traffic at all',
            )
        files = self.files(component.name, environment)
        async with files.locked() as rec:
            _check_weights(rec, weights)
            await self.routers.ensure(component, files, rec)
            rec.weights = dict(weights)
            await self.routers.publish(component, files, rec)
        return await self.state(component.name, environment)

    async def remove_set(self, component: str, environment: str, slot: str) -> None:
        files = self.files(component, environment)
        if not files.state_file.exists():
            return
        async with files.locked() as rec:
            removed = rec.sets.get(slot)
            if removed is None:
                return
            if rec.weights.get(slot, 0) > 0:
                raise ConflictError(
                    f"slot {slot!r} still receives {rec.weights[slot]}% of the traffic",
                    hint="set its weight to 0 before removing it",
                )
            del rec.sets[slot]
            rec.weights.pop(slot, None)
            await self.routers.publish(None, files, rec)
            await self._drain_and_stop(files, rec, removed.instances)
            remove_config(files, slot)

    async def retire(self, component: str, environment: str | None = None) -> None:
        # Every path is checked before anything stops or is deleted.
        envs = [environment] if environment else await self.environments(component)
        for files in [self.files(component, env) for env in envs]:
            if not files.dir.exists():
                continue
            async with files.locked() as rec:
                await self._stop([i for s in rec.sets.values() for i in s.instances])
                await self.routers.stop(files, rec)
                kill_orphans(files.dir, set())
            files.remove()
            log.info("retired", extra={"component": component, "environment": files.environment})

    async def environments(self, component: str) -> list[str]:
        return _subfolders(child(self.root, component), ENVIRONMENT_PATTERN)

    async def targets(self) -> list[tuple[str, str]]:
        return [
            (c, e)
            for c in _subfolders(self.root, COMPONENT_PATTERN)
            for e in _subfolders(child(self.root, c), ENVIRONMENT_PATTERN)
        ]

    async def state(self, component: str, environment: str) -> TargetState:
        files = self.files(component, environment)
        rec = files.load()
        router = rec.router
        router_alive = router is not None and processes.alive(router.pid, router.ticks)
        health: dict[str, bool] = {}
        generation = rec.generation
        if router_alive and router is not None:
            status = await self.routers.status(router)
            if status is not None:
                health = {b.instance_id: b.healthy for b in status.backends}
                generation = status.generation
        admin = (
            f"http://127.0.0.1:{router.admin_port}"
            if router is not None and router.admin_port is not None
            else None
        )
        return TargetState(
            component=component,
            environment=environment,
            endpoint=f"http://127.0.0.1:{router.port}" if router else None,
            admin_endpoint=admin,
            metrics_url=f"{admin}/metrics" if admin else None,
            router_pid=router.pid if router else None,
            router_alive=router_alive,
            generation=generation,
            weights=rec.weights,
            sets=[
                self._set_info(slot, s, rec, files, healthy=health) for slot, s in rec.sets.items()
            ],
        )

    async def reconcile(self) -> list[str]:
        """Restart routers that died while nothing touched their target (worker start-up),
        and replace those that have no admin port yet."""
        restarted = []
        for component, environment in await self.targets():
            files = self.files(component, environment)
            rec = files.load()
            router = rec.router
            if router and (
                router.admin_port is None or not processes.alive(router.pid, router.ticks)
            ):
                async with files.locked() as locked:
                    await self.routers.ensure(None, files, locked)
                restarted.append(f"{component}/{environment}")
        return restarted

    # ------------------------------------------------------------------ instances

    def _start_instance(
        self,
        component: Component,
        files: TargetFiles,
        rec: TargetRecord,
        slot: str,
        current: SetRecord,
        config: InstanceConfig,
    ) -> InstanceRecord:
        name = instance_id(component.name, files.environment, slot, rec.next_instance)
        rec.next_instance += 1
        log_file = files.log_file(name)
        port = self.ports.allocate(owner=name)
        values = {"port": str(port), "version": current.version, "instance": name}
        runtime = component.runtime
        try:
            argv = instance_argv(runtime, values)
            rendered = config_path(files, slot) if runtime.config_file else None
            env = instance_env(
                runtime,
                current.env_overrides,
                values,
                files.dir,
                config,
                rendered,
                dependencies=self._dependency_urls(component, files.environment),
            )
            pid, ticks = processes.start_detached(argv, env, runtime.working_dir, log_file)
        except ValueError as err:  # a template stored before templates were checked
            self.ports.release(port)
            raise InvalidInputError(
                f"the runtime of {component.name} cannot be filled in: {err}",
                hint="fix the component's runtime (PUT /api/v1/components/{id})",
            ) from err
        except OSError as err:
            self.ports.release(port)
            raise InvalidInputError(
                f"cannot run {runtime.command[0]!r} for {component.name}: {err.strerror or err}",
                hint="fix the component's runtime.command (PUT /api/v1/components/{id})",
            ) from err
        log.info(
            "instance started",
            extra={"instance": name, "pid": pid, "port": port, "version": current.version},
        )
        return InstanceRecord(
            instance_id=name, port=port, pid=pid, ticks=ticks, started_at=utcnow()
        )

    def _dependency_urls(self, component: Component, environment: str) -> dict[str, str]:
        """`<NAME>_URL` of each dependency: its router in the same environment, so calls
        between components go through the routers (and their canary weights). Read from the
        dependency's state file without its lock: a router's port is written once, when it
        starts. A dependency not deployed here yet has no variable, and a warning says so."""
        urls: dict[str, str] = {}
        for dependency in component.depends_on:
            router = self.files(dependency.component, environment).load().router
            if router is None:
                log.warning(
                    "dependency not deployed: its URL variable is not set",
                    extra={
                        "component": component.name,
                        "environment": environment,
                        "dependency": dependency.component,
                    },
                )
                continue
            urls[dependency_variable(dependency.component)] = f"http://127.0.0.1:{router.port}"
        return urls

    def _forget_dead(self, current: SetRecord) -> None:
        for inst in current.instances:
            if not processes.alive(inst.pid, inst.ticks):
                log.warning(
                    "instance found dead; replacing it",
                    extra={"instance": inst.instance_id, "pid": inst.pid},
                )
                self.ports.release(inst.port)
        current.instances = [i for i in current.instances if processes.alive(i.pid, i.ticks)]

    async def _wait_healthy(
        self, runtime: RuntimeSpec, files: TargetFiles, rec: TargetRecord, current: SetRecord
    ) -> None:
        """Wait until every new instance of `current` passes its check; an instance that
        exits or stays unhealthy is stopped and taken out of the set, its port given back."""
        check = runtime.health_check
        waiting = {i.instance_id: i for i in current.instances if not i.healthy_once}
        streak = dict.fromkeys(waiting, 0)
        deadline = time.monotonic() + self.startup_timeout
        while waiting:
            for inst in list(waiting.values()):
                if not processes.alive(inst.pid, inst.ticks):
                    await self._discard(files, rec, current, [inst])
                    raise InfrastructureError(
                        f"instance {inst.instance_id} exited while starting",
                        hint="check the component's runtime command",
                        log_tail=processes.tail(files.logs / f"{inst.instance_id}.log"),
                    )
                url = f"http://127.0.0.1:{inst.port}{check.path}"
                try:
                    ok = (await self.http.get(url, timeout=check.timeout_seconds)).is_success
                except httpx.HTTPError:
                    ok = False
                streak[inst.instance_id] = streak[inst.instance_id] + 1 if ok else 0
                if streak[inst.instance_id] >= check.healthy_threshold:
                    inst.healthy_once = True
                    del waiting[inst.instance_id]
            if waiting and time.monotonic() > deadline:
                first = next(iter(waiting.values()))
                tail = processes.tail(files.logs / f"{first.instance_id}.log")
                await self._discard(files, rec, current, list(waiting.values()))
                raise InfrastructureError(
                    f"{len(waiting)} instance(s) not healthy within {self.startup_timeout:.0f}s",
                    hint=f"GET {check.path} must answer 2xx; see the instance log",
                    log_tail=tail,
                )
            if waiting:
                await asyncio.sleep(0.05)

    async def _discard(
        self,
        files: TargetFiles,
        rec: TargetRecord,
        current: SetRecord,
        failed: list[InstanceRecord],
    ) -> None:
        """Stop instances that failed to start and forget them, ports included."""
        await self._stop(failed)
        gone = {i.instance_id for i in failed}
        current.instances = [i for i in current.instances if i.instance_id not in gone]
        files.save(rec)

    async def _stop(self, instances: Iterable[InstanceRecord]) -> None:
        batch = list(instances)
        await asyncio.gather(*(processes.stop(i.pid, i.ticks) for i in batch))
        for inst in batch:
            self.ports.release(inst.port)
            log.info("instance stopped", extra={"instance": inst.instance_id})

    async def _drain_and_stop(
        self, files: TargetFiles, rec: TargetRecord, instances: list[InstanceRecord]
    ) -> None:
        """Stop instances the router no longer sends to, once their requests have finished."""
        if not instances:
            return
        if rec.router is not None:
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while time.monotonic() < deadline:
                status = await self.routers.status(rec.router)
                if status is None or status.draining == 0:
                    break
                await asyncio.sleep(0.05)
        await self._stop(instances)
        files.save(rec)

    # ------------------------------------------------------------------ reporting

    def _set_info(
        self,
        slot: str,
        s: SetRecord,
        rec: TargetRecord,
        files: TargetFiles,
        healthy: dict[str, bool] | None,
    ) -> SetInfo:
        return SetInfo(
            slot=slot,
            version=s.version,
            desired=s.desired,
            weight=rec.weights.get(slot, 0),
            config_revision=s.config_revision,
            instances=[
                InstanceInfo(
                    instance_id=i.instance_id,
                    version=s.version,
                    slot=slot,
                    url=f"http://127.0.0.1:{i.port}",
                    port=i.port,
                    pid=i.pid,
                    state=InstanceState.RUNNING
                    if processes.alive(i.pid, i.ticks)
                    else InstanceState.DEAD,
                    healthy=(healthy or {}).get(i.instance_id, True if healthy is None else None),
                    started_at=i.started_at,
                    log_file=str(files.logs / f"{i.instance_id}.log"),
                )
                for i in s.instances
            ],
        )


def _runs(current: SetRecord | None, spec: InstanceSetSpec, config: InstanceConfig) -> bool:
    """Whether the set already runs `spec.count` live instances of what is asked."""
    if current is None or current.version != spec.version:
        return False
    live = [i for i in current.instances if processes.alive(i.pid, i.ticks)]
    return current.config_revision == config.revision and len(live) >= spec.count


def _shown(revision: int | None) -> str:
    return "none" if revision is None else str(revision)


def _subfolders(base: Path, pattern: str) -> list[str]:
    """Names of the folders in `base` that are valid names (never links, never `_prometheus`)."""
    if not base.is_dir():
        return []
    return sorted(
        p.name
        for p in base.iterdir()
        if re.fullmatch(pattern, p.name) and p.is_dir() and not p.is_symlink()
    )


def _known_sessions(rec: TargetRecord) -> set[int]:
    """The sessions of the live processes the state records (each leads its own)."""
    leaders = [(i.pid, i.ticks) for s in rec.sets.values() for i in s.instances]
    if rec.router is not None:
        leaders.append((rec.router.pid, rec.router.ticks))
    return {pid for pid, ticks in leaders if processes.alive(pid, ticks)}


def _check_weights(rec: TargetRecord, weights: dict[str, int]) -> None:
    unknown = sorted(set(weights) - set(rec.sets))
    if unknown:
        raise InvalidInputError(
            f"no instance set in slot(s) {unknown}", hint=f"known slots: {sorted(rec.sets)}"
        )
    total = sum(weights.values())
    if any(w < 0 or w > 100 for w in weights.values()) or total not in (0, 100):
        raise InvalidInputError(
            f"weights must be 0-100 and sum to 100 (or 0: no traffic), got {weights}"
        )
    for slot, weight in weights.items():
        if weight > 0 and not any(i.healthy_once for i in rec.sets[slot].instances):
            raise InvalidInputError(f"slot {slot!r} has no healthy instance to send traffic to")
