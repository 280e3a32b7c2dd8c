"""The local provider: component instances as processes behind one router per target.

Every operation takes the target's lock, reads its state from disk, brings the processes and
the routing table to what was asked, and saves the state again; so a retry after a crash
finds what the crashed attempt did and finishes it, never starting anything twice.
Instances and routers run in their own sessions and outlive the worker that started them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from activities.infrastructure.local import processes
from activities.infrastructure.local.orphans import kill_orphans
from activities.infrastructure.local.ports import DEFAULT_RANGE, PortAllocator
from activities.infrastructure.local.router.table import (
    Backend,
    HealthPolicy,
    RouterStatus,
    RouteTable,
    write_table,
)
from activities.infrastructure.local.state import (
    InstanceRecord,
    RouterRecord,
    SetRecord,
    TargetFiles,
    TargetRecord,
)
from core.db.tables import utcnow
from core.errors import ConflictError, InfrastructureError, InvalidInputError
from core.models.components import Component, RuntimeSpec
from core.models.infrastructure import (
    InstanceInfo,
    InstanceSetSpec,
    InstanceState,
    SetInfo,
    TargetState,
)

log = logging.getLogger("r2c.infra.local")

STARTUP_TIMEOUT = 60.0
ROUTER_ACK_TIMEOUT = 10.0
DRAIN_TIMEOUT = 10.0
# Variables of our own processes that an instance must not inherit (ports, credentials).
_PRIVATE_PREFIXES = ("R2C_", "VAULT_", "TEMPORAL_", "POSTGRES_")
_PRIVATE_NAMES = {"PORT", "METRICS_PORT", "JAEGER_ENDPOINT", "PROMETHEUS_URL"}


def cli_argv(*args: str) -> list[str]:
    """This installation's `r2c`, whatever is on PATH."""
    return [sys.executable, "-m", "cli", *args]


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
        self.http = http
        self.startup_timeout = startup_timeout

    def files(self, component: str, environment: str) -> TargetFiles:
        return TargetFiles(self.root, component, environment)

    # ------------------------------------------------------------------ interface

    async def ensure_instances(self, component: Component, spec: InstanceSetSpec) -> SetInfo:
        files = self.files(component.name, spec.environment)
        async with files.locked() as rec:
            kill_orphans(files.dir, _known_pids(rec))
            await self._ensure_router(component, files, rec)
            current = rec.sets.get(spec.slot)
            if current is not None and current.version != spec.version:
                if rec.weights.get(spec.slot, 0) > 0:
                    raise ConflictError(
                        f"slot {spec.slot!r} serves traffic with version {current.version}",
                        hint="shift its weight to another slot before changing its version",
                    )
                await self._stop(current.instances)
                current = None
            if current is None:
                current = rec.sets[spec.slot] = SetRecord(version=spec.version, desired=0)
            current.desired, current.key = spec.count, spec.key
            current.env_overrides = spec.env_overrides
            self._forget_dead(current)
            surplus = current.instances[spec.count :]
            current.instances = current.instances[: spec.count]
            while len(current.instances) < spec.count:
                current.instances.append(self._start_instance(component, files, rec, spec))
                files.save(rec)  # recorded at once: a crash now must not orphan it
            await self._wait_healthy(component.runtime, files, current.instances)
            await self._publish(component, files, rec)
            await self._drain_and_stop(files, rec, surplus)
            return self._set_info(spec.slot, current, rec, files, healthy=None)

    async def set_weights(
        self, component: Component, environment: str, weights: dict[str, int]
    ) -> TargetState:
        files = self.files(component.name, environment)
        async with files.locked() as rec:
            _check_weights(rec, weights)
            await self._ensure_router(component, files, rec)
            rec.weights = dict(weights)
            await self._publish(component, files, rec)
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
            await self._publish(None, files, rec)
            await self._drain_and_stop(files, rec, removed.instances)

    async def retire(self, component: str, environment: str | None = None) -> None:
        for env in [environment] if environment else await self.environments(component):
            files = self.files(component, env)
            if not files.dir.exists():
                continue
            async with files.locked() as rec:
                await self._stop([i for s in rec.sets.values() for i in s.instances])
                if rec.router is not None:
                    await processes.stop(rec.router.pid, rec.router.ticks)
                    self.ports.release(rec.router.port)
                kill_orphans(files.dir, set())
            files.remove()
            log.info("retired", extra={"component": component, "environment": env})

    async def environments(self, component: str) -> list[str]:
        base = self.root / component
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    async def targets(self) -> list[tuple[str, str]]:
        if not self.root.is_dir():
            return []
        return [
            (c.name, e.name)
            for c in sorted(p for p in self.root.iterdir() if p.is_dir())
            for e in sorted(p for p in c.iterdir() if p.is_dir())
        ]

    async def state(self, component: str, environment: str) -> TargetState:
        files = self.files(component, environment)
        rec = files.load()
        router_alive = rec.router is not None and processes.alive(rec.router.pid, rec.router.ticks)
        health: dict[str, bool] = {}
        generation = rec.generation
        if router_alive and rec.router is not None:
            status = await self._router_status(rec.router.port)
            if status is not None:
                health = {b.instance_id: b.healthy for b in status.backends}
                generation = status.generation
        return TargetState(
            component=component,
            environment=environment,
            endpoint=f"http://127.0.0.1:{rec.router.port}" if rec.router else None,
            router_pid=rec.router.pid if rec.router else None,
            router_alive=router_alive,
            generation=generation,
            weights=rec.weights,
            sets=[
                self._set_info(slot, s, rec, files, healthy=health) for slot, s in rec.sets.items()
            ],
        )

    async def reconcile(self) -> list[str]:
        """Restart routers that died while nothing touched their target (worker start-up)."""
        restarted = []
        for component, environment in await self.targets():
            files = self.files(component, environment)
            rec = files.load()
            if rec.router and not processes.alive(rec.router.pid, rec.router.ticks):
                async with files.locked() as locked:
                    await self._ensure_router(None, files, locked)
                restarted.append(f"{component}/{environment}")
        return restarted

    # ------------------------------------------------------------------ instances

    def _start_instance(
        self, component: Component, files: TargetFiles, rec: TargetRecord, spec: InstanceSetSpec
    ) -> InstanceRecord:
        instance_id = f"{component.name}-{spec.environment}-{spec.slot}-{rec.next_instance}"
        rec.next_instance += 1
        port = self.ports.allocate(owner=instance_id)
        values = {"port": str(port), "version": spec.version, "instance": instance_id}
        runtime = component.runtime
        argv = [arg.format(**values) for arg in runtime.command]
        if argv[0] == "r2c":
            argv = cli_argv(*argv[1:])
        env = {k: v for k, v in os.environ.items() if not _private(k)}
        env.update({k: v.format(**values) for k, v in runtime.env.items()})
        env.update({k: v.format(**values) for k, v in spec.env_overrides.items()})
        env.update(R2C_INSTANCE=instance_id, R2C_TARGET=str(files.dir))
        try:
            pid, ticks = processes.start_detached(
                argv, env, runtime.working_dir, files.logs / f"{instance_id}.log"
            )
        except OSError as err:
            self.ports.release(port)
            raise InvalidInputError(
                f"cannot run {argv[0]!r} for {component.name}: {err.strerror or err}",
                hint="fix the component's runtime.command (PUT /api/v1/components/{id})",
            ) from err
        log.info(
            "instance started",
            extra={"instance": instance_id, "pid": pid, "port": port, "version": spec.version},
        )
        return InstanceRecord(
            instance_id=instance_id, port=port, pid=pid, ticks=ticks, started_at=utcnow()
        )

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
        self, runtime: RuntimeSpec, files: TargetFiles, instances: Iterable[InstanceRecord]
    ) -> None:
        check = runtime.health_check
        waiting = {i.instance_id: i for i in instances if not i.healthy_once}
        streak = dict.fromkeys(waiting, 0)
        deadline = time.monotonic() + self.startup_timeout
        while waiting:
            for inst in list(waiting.values()):
                log_file = files.logs / f"{inst.instance_id}.log"
                if not processes.alive(inst.pid, inst.ticks):
                    raise InfrastructureError(
                        f"instance {inst.instance_id} exited while starting",
                        hint="check the component's runtime command",
                        log_tail=processes.tail(log_file),
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
                raise InfrastructureError(
                    f"{len(waiting)} instance(s) not healthy within {self.startup_timeout:.0f}s",
                    hint=f"GET {check.path} must answer 2xx; see the instance log",
                    log_tail=processes.tail(files.logs / f"{first.instance_id}.log"),
                )
            if waiting:
                await asyncio.sleep(0.05)

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
                status = await self._router_status(rec.router.port)
                if status is None or status.draining == 0:
                    break
                await asyncio.sleep(0.05)
        await self._stop(instances)
        files.save(rec)

    # ------------------------------------------------------------------ router

    async def _ensure_router(
        self, component: Component | None, files: TargetFiles, rec: TargetRecord
    ) -> None:
        if rec.router is not None and processes.alive(rec.router.pid, rec.router.ticks):
            return
        owner = f"router:{files.component}/{files.environment}"
        if rec.router is None:
            wanted = component.runtime.router_port if component else None
            rec.router = RouterRecord(port=self.ports.allocate(owner, wanted))
        else:
            log.warning("router found dead; restarting it", extra={"port": rec.router.port})
            self.ports.allocate(owner, rec.router.port)
        if not files.routes_file.exists():
            write_table(
                files.routes_file,
                RouteTable(component=files.component, environment=files.environment),
            )
        argv = cli_argv(
            "router",
            "--table",
            str(files.routes_file),
            "--port",
            str(rec.router.port),
        )
        env = {k: v for k, v in os.environ.items() if not _private(k)}
        env["R2C_TARGET"] = str(files.dir)
        pid, ticks = processes.start_detached(argv, env, None, files.logs / "router.log")
        rec.router.pid, rec.router.ticks = pid, ticks
        files.save(rec)
        deadline = time.monotonic() + ROUTER_ACK_TIMEOUT
        while await self._router_status(rec.router.port) is None:
            if time.monotonic() > deadline or not processes.alive(pid, ticks):
                raise InfrastructureError(
                    f"the router of {files.component}/{files.environment} did not start",
                    log_tail=processes.tail(files.logs / "router.log"),
                )
            await asyncio.sleep(0.05)

    async def _publish(
        self, component: Component | None, files: TargetFiles, rec: TargetRecord
    ) -> None:
        """Write the routing table and wait until the router serves it."""
        previous = files.routes_file
        health = (
            HealthPolicy(
                **component.runtime.health_check.model_dump(exclude={"path"}),
                path=component.runtime.health_check.path,
            )  # fmt: skip
            if component
            else _current_policy(previous)
        )
        rec.generation += 1
        table = RouteTable(
            component=files.component,
            environment=files.environment,
            generation=rec.generation,
            weights=rec.weights,
            backends=[
                Backend(instance_id=i.instance_id, port=i.port, version=s.version, slot=slot)
                for slot, s in rec.sets.items()
                for i in s.instances
                if i.healthy_once
            ],
            health=health,
        )
        write_table(files.routes_file, table)
        files.save(rec)
        if rec.router is None:
            return
        deadline = time.monotonic() + ROUTER_ACK_TIMEOUT
        while True:
            status = await self._router_status(rec.router.port)
            if status is not None and status.generation >= rec.generation:
                return
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"the router did not apply routing generation {rec.generation} in time",
                    log_tail=processes.tail(files.logs / "router.log"),
                )
            await asyncio.sleep(0.02)

    async def _router_status(self, port: int) -> RouterStatus | None:
        try:
            resp = await self.http.get(f"http://127.0.0.1:{port}/_r2c/status", timeout=1.0)
            return RouterStatus.model_validate_json(resp.content)
        except (httpx.HTTPError, ValueError):
            return None

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


def _private(name: str) -> bool:
    return name.startswith(_PRIVATE_PREFIXES) or name in _PRIVATE_NAMES


def _known_pids(rec: TargetRecord) -> set[int]:
    pids = {i.pid for s in rec.sets.values() for i in s.instances}
    if rec.router is not None:
        pids.add(rec.router.pid)
    return pids


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


def _current_policy(routes_file: Path) -> HealthPolicy:
    try:
        return RouteTable.model_validate_json(routes_file.read_bytes()).health
    except (OSError, ValueError):
        return HealthPolicy()
