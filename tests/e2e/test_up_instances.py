"""Instances and routers outlive `r2c up`, and a restarted `up` finds them again."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx

from activities.infrastructure.local.orphans import target_processes
from activities.infrastructure.local.provider import LocalProvider
from cli.load import run_load
from core.db.tables import utcnow
from core.models.components import Component, ComponentSpec
from core.models.infrastructure import InstanceSetSpec
from tests.e2e.up_stack import UpStack
from tests.support import wait_for_sync


async def _deploy_by_hand(stack: UpStack, component: Component) -> str:
    """What a deployment step does, through the provider on up's R2C_HOME."""
    async with httpx.AsyncClient() as http:
        provider = LocalProvider(stack.home, http)
        spec = InstanceSetSpec(
            component="demo", environment="dev", version="v1", slot="stable", count=2
        )
        await provider.ensure_instances(component, spec)
        state = await provider.set_weights(component, "dev", {"stable": 100})
    assert state.endpoint is not None
    return state.endpoint


def test_instances_outlive_up_and_are_found_again(up_stack: UpStack) -> None:
    up_stack.start()
    assert "registered component 'demo'" in up_stack.register_demo()
    headers = up_stack.headers
    api = up_stack.base_url
    body = httpx.get(f"{api}/api/v1/components/demo", headers=headers).json()
    now = utcnow()
    spec = ComponentSpec.model_validate({k: body[k] for k in ComponentSpec.model_fields})
    component = Component(**spec.model_dump(), id=body["id"], created_at=now, updated_at=now,
                          revision=1)  # fmt: skip
    endpoint = asyncio.run(_deploy_by_hand(up_stack, component))
    target = up_stack.home / "infra" / "demo" / "dev"
    running = set(target_processes(target))
    assert len(running) == 3  # two instances and the router

    assert up_stack.runs[-1].stop(signal.SIGTERM) == 0
    # up's own children are gone; the component's processes are not, by design.
    assert set(up_stack.leftovers()) == running
    report = asyncio.run(run_load(endpoint + "/", rps=100, duration=1))
    assert report.failed == 0 and report.by_version["v1"].requests == 100

    victim = asyncio.run(_instance_pids(up_stack))[0]
    os.kill(victim, signal.SIGKILL)

    up_stack.start()
    listed = httpx.get(f"{api}/api/v1/components/demo/instances", headers=headers).json()
    assert sorted(i["state"] for i in listed) == ["dead", "running"]
    assert next(i for i in listed if i["state"] == "dead")["pid"] == victim
    report = asyncio.run(run_load(endpoint + "/", rps=100, duration=1))
    assert report.failed == 0, report.errors

    started = httpx.post(
        f"{api}/api/v1/orchestration/workflows",
        json={"type": "component-health-check", "input": {}},
        headers=headers,
    ).json()
    done = wait_for_sync(
        lambda: httpx.get(
            f"{api}/api/v1/orchestration/workflows/{started['id']}", headers=headers
        ).json(),
        lambda d: d["status"] == "completed",
        what="the health check",
    )
    (demo,) = done["result"]["last"]["components"]
    assert (demo["component"], demo["state"], demo["healthy_instances"]) == ("demo", "healthy", 1)

    gone = httpx.delete(f"{api}/api/v1/components/demo", headers=headers, timeout=60)
    assert gone.status_code == 204, gone.text
    assert target_processes(target) == []
    assert up_stack.runs[-1].stop(signal.SIGTERM) == 0
    assert wait_for_sync(up_stack.leftovers, lambda left: not left, what="nothing left") == {}


async def _instance_pids(stack: UpStack) -> list[int]:
    async with httpx.AsyncClient() as http:
        state = await LocalProvider(stack.home, http).state("demo", "dev")
    return [i.pid for s in state.sets for i in s.instances]
