"""The router of each target: started, replaced when dead, told the routes, asked its status.

A router has two ports: the public one, which proxies every path to the application, and an
admin port on 127.0.0.1 for its own `/status` and `/metrics`. Both are recorded in the state,
so a router restarted after a crash comes back on the same ones. For Prometheus, each router's
admin address is also written to `R2C_HOME/infra/_prometheus/<component>.<environment>.json`
(file-based service discovery; see `deploy/prometheus/prometheus.yml`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx

from activities.infrastructure.local import processes
from activities.infrastructure.local.launch import cli_argv, router_env
from activities.infrastructure.local.paths import child, private_dir, write_private
from activities.infrastructure.local.ports import PortAllocator
from activities.infrastructure.local.router.table import (
    Backend,
    HealthPolicy,
    RouterLimits,
    RouterStatus,
    RouteTable,
    read_table,
    write_table,
)
from activities.infrastructure.local.scrape_targets import previous_metrics_path, scrape_groups
from activities.infrastructure.local.scrape_targets import render as render_scrape_groups
from activities.infrastructure.local.state import RouterRecord, TargetFiles, TargetRecord
from core.errors import InfrastructureError
from core.models.components import Component
from core.tracing import current_traceparent

log = logging.getLogger("r2c.infra.local")

ROUTER_ACK_TIMEOUT = 10.0
SCRAPE_DIR = "_prometheus"  # not a component name: components start with a letter


class Routers:
    """Starts and talks to the routers of the targets under one root."""

    def __init__(self, ports: PortAllocator, http: httpx.AsyncClient) -> None:
        self.ports = ports
        self.http = http

    async def ensure(
        self, component: Component | None, files: TargetFiles, rec: TargetRecord
    ) -> None:
        """A live router with an admin port for the target, on the ports it had before."""
        router = rec.router
        replaced: tuple[int, int] | None = None
        if router is not None and processes.alive(router.pid, router.ticks):
            if router.admin_port is not None:
                return
            # Started before routers had an admin port: its status is on the public port,
            # which belongs to the application now. Replaced by one that has an admin port,
            # started first on the same port (SO_REUSEPORT), so no client is refused.
            replaced = (router.pid, router.ticks)
        target = f"{files.component}/{files.environment}"
        owner = f"router:{target}"
        if router is None:
            wanted = component.runtime.router_port if component else None
            router = rec.router = RouterRecord(port=self.ports.allocate(owner, wanted))
        elif replaced is None:
            log.warning("router found dead; restarting it", extra={"port": router.port})
            self.ports.allocate(owner, router.port)
        router.admin_port = self._admin_port(f"router-admin:{target}", router.admin_port)
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
            str(router.port),
            "--admin-port",
            str(router.admin_port),
        )
        log_file = files.log_file("router")
        pid, ticks = processes.start_detached(argv, router_env(files.dir), None, log_file)
        router.pid, router.ticks = pid, ticks
        files.save(rec)
        self._write_scrape_target(files, router.admin_port, component)
        deadline = time.monotonic() + ROUTER_ACK_TIMEOUT
        while await self.status(router) is None:
            if time.monotonic() > deadline or not processes.alive(pid, ticks):
                raise InfrastructureError(
                    f"the router of {files.component}/{files.environment} did not start",
                    log_tail=processes.tail(log_file),
                )
            await asyncio.sleep(0.05)
        if replaced is not None:
            await processes.stop(*replaced)
            log.info("router replaced by one with an admin port", extra={"port": router.port})

    def _admin_port(self, owner: str, previous: int | None) -> int:
        if previous is not None:
            try:
                return self.ports.allocate(owner, previous)
            except OSError:  # taken by another program while the router was down
                log.warning("admin port %s taken; the router gets another", previous)
        return self.ports.allocate(owner)

    async def stop(self, files: TargetFiles, rec: TargetRecord) -> None:
        """Stop the target's router and give its ports back."""
        router = rec.router
        if router is None:
            return
        await processes.stop(router.pid, router.ticks)
        self.ports.release(router.port)
        if router.admin_port is not None:
            self.ports.release(router.admin_port)
        self._scrape_file(files).unlink(missing_ok=True)

    async def publish(
        self, component: Component | None, files: TargetFiles, rec: TargetRecord
    ) -> None:
        """Write the routing table and wait until the router serves it."""
        health, limits, previous = _current_policy(files)
        if component is not None:
            check = component.runtime.health_check
            health = HealthPolicy(**check.model_dump(exclude={"path"}), path=check.path)
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
            limits=limits,  # kept: an operator may have tuned them in the file
        )
        table.traces = rollout_traces(previous, table, current_traceparent())
        write_table(files.routes_file, table)
        files.save(rec)
        if rec.router is None:
            return
        self._write_scrape_target(files, rec.router.admin_port, component, table)
        deadline = time.monotonic() + ROUTER_ACK_TIMEOUT
        while True:
            status = await self.status(rec.router)
            if status is not None and status.generation >= rec.generation:
                return
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"the router did not apply routing generation {rec.generation} in time",
                    log_tail=processes.tail(files.logs / "router.log"),
                )
            await asyncio.sleep(0.02)

    async def status(self, router: RouterRecord) -> RouterStatus | None:
        """What the router reports on its admin port; None if it does not answer."""
        if router.admin_port is None:
            return None
        try:
            resp = await self.http.get(f"http://127.0.0.1:{router.admin_port}/status", timeout=1.0)
            return RouterStatus.model_validate_json(resp.content)
        except (httpx.HTTPError, ValueError):
            return None

    # ------------------------------------------------------------------ Prometheus

    def _scrape_file(self, files: TargetFiles) -> Path:
        return child(files.root, SCRAPE_DIR, f"{files.component}.{files.environment}.json")

    def _write_scrape_target(
        self,
        files: TargetFiles,
        admin_port: int | None,
        component: Component | None,
        table: RouteTable | None = None,
    ) -> None:
        """The router's and its instances' targets (scrape_targets.py), replaced atomically
        (write, then rename) so Prometheus never reads half a file. Without `table`, the
        instances are those of the routing table on disk; on the component's metrics path
        (none: not listed; without the component: the path the file had)."""
        if table is None:
            try:
                table = read_table(files.routes_file)
            except (OSError, ValueError):
                table = None
        path = self._scrape_file(files)
        private_dir(child(files.root, SCRAPE_DIR), files.root)
        if component is not None:
            metrics_path = component.runtime.metrics_path
        else:
            metrics_path = previous_metrics_path(path)
        groups = scrape_groups(files.component, files.environment, admin_port, table, metrics_path)
        write_private(path, render_scrape_groups(groups))


def _current_policy(files: TargetFiles) -> tuple[HealthPolicy, RouterLimits, RouteTable | None]:
    try:
        table = RouteTable.model_validate_json(files.routes_file.read_bytes())
    except (OSError, ValueError):
        return HealthPolicy(), RouterLimits(), None
    return table.health, table.limits, table


def rollout_traces(
    previous: RouteTable | None, table: RouteTable, traceparent: str | None
) -> dict[str, str]:
    """Which slots' traffic joins which deployment's trace (slot -> traceparent).

    A slot whose version changes in this table, published from within a traced deployment
    (`traceparent`, the activity's span), joins that deployment's trace, and keeps it while
    its version stays; a slot that takes all the traffic has finished its rollout and drops
    it, so a stable version's traffic never grows an old trace for ever.
    """
    before = _versions(previous) if previous is not None else {}
    kept = previous.traces if previous is not None else {}
    traces: dict[str, str] = {}
    for slot, versions in _versions(table).items():
        if table.weights.get(slot, 0) >= 100:
            continue
        if versions == before.get(slot):
            if slot in kept:
                traces[slot] = kept[slot]
        elif traceparent is not None:
            traces[slot] = traceparent
    return traces


def _versions(table: RouteTable) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for backend in table.backends:
        found.setdefault(backend.slot, set()).add(backend.version)
    return found
