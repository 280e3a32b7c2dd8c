"""A deployment start whose process died half-way (a worker SIGKILLed in a scheduled start's
activity, as tests/e2e/test_scale_out.py does) is finished by its retry with the same id:
the workflow started once, the start audited once. Found by the scale-out test: the retry
answered the recorded row and left the audit event (or the workflow) out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from api.gateway import Gateway
from api.services import audit
from core.db.engine import make_engine, sessions
from core.db.tables import DeploymentRow
from tests.integration.deploying import until
from tests.integration.system import System
from tests.support import wait_for


class Killed(BaseException):
    """The process dies here: nothing after it runs, no handler cleans up."""


async def _die(*_: Any, **__: Any) -> Any:
    raise Killed


async def _age(system: System, deployment_id: str) -> None:
    """As if the retry came a while later (an activity's retry does, after its timeout)."""
    engine = make_engine(system.settings)
    try:
        async with sessions(engine)() as session:
            row = await session.get(DeploymentRow, deployment_id)
            assert row is not None
            row.created_at -= timedelta(seconds=60)
            await session.commit()
    finally:
        await engine.dispose()


async def _created_events(system: System, deployment_id: str) -> list[dict[str, Any]]:
    resp = await system.http.get(
        "/api/v1/audit",
        params={"action": "deployment.created", "target": deployment_id},
        headers=system.auth(),
    )
    return list(resp.json())


@pytest.mark.parametrize("dies_in", ["audit", "workflow start"])
async def test_a_start_interrupted_half_way_is_finished_by_its_retry(
    make_system: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, dies_in: str
) -> None:
    system: System = await make_system(noop=True)
    # A target of its own: workflow ids are per target, on a server every test shares.
    name = f"interrupted-{dies_in.split()[0]}"
    spec = {"name": name, "runtime": {"command": ["noop", "{port}"]}}
    resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
    assert resp.status_code == 201, resp.text
    body = {"component": name, "environment": "dev", "version": "v1"}
    headers = {**system.auth(), "Idempotency-Key": f"interrupted-{dies_in}"}

    with monkeypatch.context() as patch:
        if dies_in == "audit":  # after the row and the workflow
            patch.setattr(audit, "commit", _die)
        else:  # after the row, before the workflow
            patch.setattr(Gateway, "start", _die)
        with pytest.raises(Killed):
            await system.http.post("/api/v1/deployments", json=body, headers=headers)
    listed = await system.http.get("/api/v1/deployments", headers=system.auth())
    (row,) = listed.json()["items"]
    assert await _created_events(system, row["id"]) == []
    if dies_in == "audit":
        await until(system, row["id"], "succeeded")  # the workflow runs without its audit

    # A retry at once may be the first attempt still under way: it answers the row only.
    again = await system.http.post("/api/v1/deployments", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == row["id"], again.text
    assert await _created_events(system, row["id"]) == []

    await _age(system, row["id"])
    retried = await system.http.post("/api/v1/deployments", json=body, headers=headers)
    assert retried.status_code == 200 and retried.json()["id"] == row["id"], retried.text
    done = await until(system, row["id"], "succeeded")
    (event,) = await _created_events(system, row["id"])
    assert event["detail"]["resumed_after_interruption"] is True
    # Once finished, a further retry changes nothing.
    await system.http.post("/api/v1/deployments", json=body, headers=headers)
    assert len(await _created_events(system, row["id"])) == 1

    async def runs() -> list[Any]:
        query = f"TaskQueue = '{system.settings.task_queue}' AND WorkflowType = 'deployment'"
        return [e async for e in system.temporal.list_workflows(query)]

    (run,) = await wait_for(runs, what="the deployment's run listed")
    assert event["detail"]["run_id"] == run.run_id and done["state"] == "succeeded"
