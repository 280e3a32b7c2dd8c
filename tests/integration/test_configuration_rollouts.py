"""Configuration changes rolled out like versions, with real processes and real traffic: the
instances' own environment (/proc/<pid>/environ) proves which configuration revision runs
before, during and after a roll-out, a rollback and a failed canary."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from activities.infrastructure.local.orphans import target_processes
from cli.load import run_load
from tests.canaries import BAD_CANARY
from tests.integration.deploying import FINAL, first_version, register_demo, until, versions
from tests.integration.system import System
from tests.support import wait_for

URL = "/api/v1/configuration"
DEMO_DEV = {"component": "demo", "environment": "dev"}


@pytest.fixture
async def demo(system: System) -> System:
    return await register_demo(system)


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone meanwhile
        return {}
    pairs = (entry.decode().split("=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return dict(pairs)


def instance_environments(system: System) -> list[dict[str, str]]:
    """The environment of every live instance of demo/dev (the router has no R2C_INSTANCE)."""
    target = system.settings.home.resolve() / "infra" / "demo" / "dev"
    found = [environ(pid) for pid in target_processes(target)]
    return [env for env in found if "R2C_INSTANCE" in env]


def running(system: System) -> set[tuple[str | None, str | None]]:
    """(configuration revision, DEMO_ERROR_RATE) of the live instances."""
    return {
        (env.get("R2C_CONFIG_REVISION"), env.get("DEMO_ERROR_RATE"))
        for env in instance_environments(system)
    }


async def put(system: System, key: str, value: Any, **extra: Any) -> dict[str, Any]:
    body = {"value": value, "scope": DEMO_DEV, **extra}
    resp = await system.http.put(f"{URL}/{key}", json=body, headers=system.auth())
    assert resp.status_code in (200, 201), resp.text
    return dict(resp.json())


async def settled(system: System, expected: set[tuple[str | None, str | None]]) -> None:
    await wait_for(
        lambda: asyncio.to_thread(running, system),
        lambda seen: seen == expected,
        within=30,
        what=f"instances running {expected}",
    )


async def both_instances_run(
    system: System, revision: str, greeting: str, what: str
) -> list[dict[str, str]]:
    """Waits until both instances of demo/dev run configuration `revision` with GREETING
    `greeting`; their environments."""
    return await wait_for(
        lambda: asyncio.to_thread(instance_environments, system),
        lambda envs: (
            len(envs) == 2
            and all(
                e.get("R2C_CONFIG_REVISION") == revision and e.get("GREETING") == greeting
                for e in envs
            )
        ),
        within=30,
        what=what,
    )


async def test_a_failing_config_canary_rolls_back_to_the_old_configuration(
    demo: System,
) -> None:
    first = await put(demo, "demo_error_rate", 0)
    endpoint = await first_version(demo)
    before = {(str(first["revision"]), "0")}
    await settled(demo, before)

    load = asyncio.create_task(run_load(endpoint + "/", rps=40, duration=12))
    began = time.monotonic()
    change = await put(demo, "demo_error_rate", 0.6, roll_out={"strategy": BAD_CANARY})
    (rollout,) = change["rollouts"]
    assert rollout["component"] == "demo" and rollout["environment"] == "dev", rollout
    assert rollout["deployment_id"], rollout
    bad = (str(change["revision"]), "0.6")
    # During: the canary's instance runs the new revision beside the old ones.
    await wait_for(
        lambda: asyncio.to_thread(running, demo),
        lambda seen: bad in seen and before <= seen,
        within=30,
        what="the canary running the new configuration beside the old one",
    )
    done = await until(demo, rollout["deployment_id"], *FINAL, "paused", within=90)
    took = time.monotonic() - began
    print(f"config canary (DEMO_ERROR_RATE=0.6) rolled back {took:.1f}s after the PUT")
    assert done["state"] == "rolled_back", done["status"]
    assert done["config_revision"] == change["revision"]
    assert "error_rate" in done["reason"], done["reason"]
    # After: only the old configuration runs, and serves.
    await settled(demo, before)
    assert await versions(endpoint) == {"v1"}
    report = await load
    print(f"requests failed while it ran: {report.failed} of {report.requests}")
    assert report.requests > 0

    # A retry runs what the original ran, not what was configured since.
    await put(demo, "demo_error_rate", 0)
    resp = await demo.http.post(
        f"/api/v1/deployments/{rollout['deployment_id']}/retry", headers=demo.auth()
    )
    assert resp.status_code == 202, resp.text
    retried = resp.json()
    assert retried["config_revision"] == change["revision"], retried
    resp = await demo.http.post(f"/api/v1/deployments/{retried['id']}/abort", headers=demo.auth())
    assert resp.status_code in (200, 409), resp.text
    await until(demo, retried["id"], *FINAL, within=60)


async def test_a_good_config_change_rolls_out_and_its_rollback_restores_the_old_revision(
    demo: System,
) -> None:
    first = await put(demo, "greeting", "hello")
    endpoint = await first_version(demo)
    old = str(first["revision"])
    await both_instances_run(demo, old, "hello", "v1 running the first configuration")

    change = await put(demo, "greeting", "bonjour", roll_out={"strategy": {"type": "rolling"}})
    (rollout,) = change["rollouts"]
    done = await until(demo, rollout["deployment_id"], *FINAL, within=90)
    assert done["state"] == "succeeded", done
    new = str(change["revision"])
    assert done["version"] == "v1" and done["config_revision"] == change["revision"]
    assert done["status"]["config_revision"] == change["revision"]
    envs = await both_instances_run(demo, new, "bonjour", "the new configuration on every instance")
    assert {e["R2C_VERSION"] for e in envs if "R2C_VERSION" in e} <= {"v1"}

    resp = await demo.http.post(
        f"/api/v1/deployments/{rollout['deployment_id']}/rollback", headers=demo.auth()
    )
    assert resp.status_code == 202, resp.text
    back = await until(demo, resp.json()["id"], *FINAL, within=90)
    assert back["state"] == "succeeded", back
    assert back["version"] == "v1" and back["config_revision"] == first["revision"]
    await both_instances_run(
        demo, old, "hello", "the rollback's instances running the first configuration again"
    )
    assert await versions(endpoint) == {"v1"}
    # Revisions record the configuration each ran.
    resp = await demo.http.get(
        "/api/v1/deployments/revisions?component=demo&environment=dev", headers=demo.auth()
    )
    assert resp.status_code == 200, resp.text
    ran = [r["config_revision"] for r in resp.json()]
    assert ran[:3] == [first["revision"], change["revision"], first["revision"]], resp.json()


async def test_a_configuration_revision_above_the_newest_is_refused_naming_the_newest(
    demo: System,
) -> None:
    written = await put(demo, "greeting", "hello")
    body = {**DEMO_DEV, "version": "v1", "config": written["revision"] + 5}
    resp = await demo.http.post("/api/v1/deployments", json=body, headers=demo.auth())
    assert resp.status_code == 422, resp.text
    assert f"the newest is {written['revision']}" in resp.json()["error"]["message"], resp.text
