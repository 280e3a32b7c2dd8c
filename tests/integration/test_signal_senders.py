"""A signal from the Temporal UI has no sender the workflow can check, so the API shows who
sent each one, as Temporal's history records it."""

from __future__ import annotations

import pytest

from core.ids import deployment_workflow_id
from tests.integration.deploying import FINAL, deploy, register_demo, until
from tests.integration.system import System
from tests.support import wait_for


@pytest.fixture
async def demo(system: System) -> System:
    return await register_demo(system, replicas=1)


async def test_the_sender_of_each_signal_is_shown(demo: System) -> None:
    first = await deploy(demo, "v1")
    assert (await until(demo, first["id"], *FINAL))["state"] == "succeeded"
    started = await deploy(demo, "v2", {"type": "canary", "steps": [{"pause": {}}]})
    await until(demo, started["id"], "paused")
    handle = demo.temporal.get_workflow_handle(deployment_workflow_id("demo", "dev"))
    await handle.signal("abort")
    await until(demo, started["id"], *FINAL)

    async def senders() -> list[dict[str, str]]:
        resp = await demo.http.get(
            f"/api/v1/deployments/{started['id']}/signals", headers=demo.auth()
        )
        assert resp.status_code == 200, resp.text
        return list(resp.json())

    signals = await wait_for(senders, what="the recorded signal")
    assert [s["name"] for s in signals] == ["abort"]
    assert signals[0]["identity"] == demo.temporal.identity
