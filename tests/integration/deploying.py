"""Deploying through the API in tests: register the demo, deploy, wait for an end, look at
what serves. Shared by every integration test of deployments."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from activities.infrastructure.local.orphans import target_processes
from cli.demo import demo_spec
from cli.load import run_load
from core.db.tables import DeploymentRow
from tests.integration.system import System
from tests.support import wait_for

FINAL = ("succeeded", "rolled_back", "aborted", "failed")


async def register_demo(system: System, replicas: int = 2) -> System:
    """The demo component, probed every 0.5 s."""
    spec = demo_spec("demo", replicas)
    spec["runtime"]["health_check"]["interval_seconds"] = 0.5
    resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
    assert resp.status_code == 201, resp.text
    return system


async def deploy(system: System, version: str, strategy: dict[str, Any] | None = None,
                 **extra: Any) -> dict[str, Any]:  # fmt: skip
    body = {"component": "demo", "environment": "dev", "version": version, **extra}
    if strategy is not None:
        body["strategy"] = strategy
    resp = await system.http.post("/api/v1/deployments", json=body, headers=system.auth())
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


async def get(system: System, deployment_id: str) -> dict[str, Any]:
    resp = await system.http.get(f"/api/v1/deployments/{deployment_id}", headers=system.auth())
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def until(
    system: System, deployment_id: str, *states: str, within: float = 60
) -> dict[str, Any]:
    return await wait_for(
        lambda: get(system, deployment_id),
        lambda d: d["state"] in states,
        within=within,
        what=f"deployment {deployment_id} to be {states}",
    )


async def first_version(system: System) -> str:
    first = await deploy(system, "v1")
    done = await until(system, first["id"], *FINAL)
    assert done["state"] == "succeeded", done
    endpoint = done["status"]["endpoint"]
    assert endpoint
    return str(endpoint)


async def versions(endpoint: str, n: int = 20) -> set[str]:
    async with httpx.AsyncClient() as http:
        return {(await http.get(endpoint + "/")).headers["x-component-version"] for _ in range(n)}


def instance_count(system: System) -> int:
    target = system.settings.home.resolve() / "infra" / "demo" / "dev"
    return len(target_processes(target)) - 1  # less the router


@dataclass
class Traffic:
    """What a load run sent, by the versions that answered."""

    requests: int = 0
    failed: int = 0
    seconds: float = 0.0
    by_version: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def load_until(url: str, stop: asyncio.Event, rps: float) -> Traffic:
    """`rps` requests a second in 2-second runs until `stop` is set, however long that takes
    (a fixed-length load could end before a slow machine's analysis)."""
    seen = Traffic()
    while not stop.is_set():
        report = await run_load(url, rps=rps, duration=2)
        seen.requests += report.requests
        seen.failed += report.failed
        seen.seconds += report.duration_s
        seen.by_version.update({v: s.requests for v, s in report.by_version.items()})
        seen.errors.update(report.errors)
    return seen


async def deployed_with_traffic(
    system: System,
    endpoint: str,
    version: str,
    strategy: dict[str, Any],
    rps: float = 60,
    **extra: Any,
) -> tuple[dict[str, Any], Traffic]:
    """Deploy `version` with traffic until the deployment ends, however long that takes: a
    fixed-length load can end, on a loaded machine, before the canary's analysis or a switch
    sees any request. Returns the ended deployment and what the traffic met."""
    stop = asyncio.Event()
    load = asyncio.create_task(load_until(endpoint + "/", stop, rps=rps))
    try:
        started = await deploy(system, version, strategy, **extra)
        done = await until(system, started["id"], *FINAL)
    finally:
        stop.set()
        traffic = await load
    return done, traffic


async def deployed_under_load(
    system: System, endpoint: str, version: str, strategy: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """The ended deployment of `deployed_with_traffic` at 60 requests a second."""
    done, _ = await deployed_with_traffic(system, endpoint, version, strategy, **extra)
    return done


def ended_deployment_row(
    deployment_id: str, component: str, environment: str, version: str, strategy: str
) -> DeploymentRow:
    """A succeeded deployment as the store keeps it, for tests that need one without running
    it (a replay's recordings, a scope check)."""
    now = datetime.now(UTC)
    return DeploymentRow(
        id=deployment_id,
        component=component,
        environment=environment,
        version=version,
        strategy=strategy,
        state="succeeded",
        workflow_id=f"deploy:{component}:{environment}",
        initiator="test",
        request={},
        created_at=now,
        updated_at=now,
        finished_at=now,
    )
