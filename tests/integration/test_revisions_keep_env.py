"""A revision keeps the env overrides its deployment ran with, although the workflow keeps
env values out of every record it sends: a rollback to it must run the same version the same
way."""

from __future__ import annotations

import pytest

from tests.integration.deploying import FINAL, deploy, register_demo, until
from tests.integration.system import System


@pytest.fixture
async def demo(system: System) -> System:
    return await register_demo(system, replicas=1)


async def test_a_revision_keeps_the_env_its_deployment_ran_with(demo: System) -> None:
    started = await deploy(demo, "v1", env={"GREETING": "hello", "DEMO_LATENCY_MS": "1"})
    done = await until(demo, started["id"], *FINAL)
    assert done["state"] == "succeeded", done
    revisions = await demo.http.get(
        "/api/v1/deployments/revisions?component=demo&environment=dev", headers=demo.auth()
    )
    assert revisions.status_code == 200, revisions.text
    assert revisions.json()[0]["env"] == {"GREETING": "hello", "DEMO_LATENCY_MS": "1"}
