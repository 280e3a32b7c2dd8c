"""A signal sent as the Temporal UI sends it ("Send signal") never passes through the API, yet
it is in the audit trail, honoured or not, and the chain stays intact: the deployment workflow
records it through the worker's `record-audit-event` activity, in the real store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.audit import AuditActivities, AuditEventRequest
from core.db.engine import make_engine, sessions
from core.ids import deployment_workflow_id
from tests.integration.deploying import FINAL, deploy, register_demo, until
from tests.integration.system import System
from tests.support import wait_for


async def test_signals_from_the_temporal_ui_are_in_the_audit_trail(
    make_system: Callable[..., Any],
) -> None:
    # The real workflow, worker, activity and store; instances are not the point: no-op ones.
    s: System = await register_demo(await make_system(noop=True), replicas=1)
    first = await deploy(s, "v1")
    assert (await until(s, first["id"], *FINAL))["state"] == "succeeded"
    started = await deploy(s, "v2", {"type": "canary", "steps": [{"pause": {}}]})
    await until(s, started["id"], "paused", *FINAL)
    handle = s.temporal.get_workflow_handle(deployment_workflow_id("demo", "dev"))
    await handle.signal("approve", {"by": "dana"})  # ignored: no step waits for an approval
    await handle.signal("promote", {"by": "dana", "reason": "checked the canary"})
    assert (await until(s, started["id"], *FINAL))["state"] == "succeeded"

    async def signalled() -> list[dict[str, Any]]:
        resp = await s.http.get("/api/v1/audit", params={"target": started["id"]}, headers=s.auth())
        assert resp.status_code == 200, resp.text
        return [e for e in resp.json() if e["actor"] == "temporal-ui (dana)"]

    events = await wait_for(signalled, lambda e: len(e) >= 2, what="the signals' events")
    by_action = {e["action"]: e for e in events}
    assert len(events) == 2 and set(by_action) == {"deployment.approve", "deployment.promote"}
    assert by_action["deployment.promote"]["detail"] == {
        "via": "temporal-ui-signal",
        "honoured": True,
        "comment": "checked the canary",
    }
    ignored = by_action["deployment.approve"]["detail"]
    assert ignored["honoured"] is False
    assert ignored["reason"] == "no step is waiting for an approval"

    # A retry of the activity (same key) finds the event its first attempt wrote: no second.
    promoted = by_action["deployment.promote"]
    assert promoted["request_id"].startswith("ui-signal:")
    engine = make_engine(s.settings)
    try:
        again = AuditEventRequest(
            key=promoted["request_id"],
            actor=promoted["actor"],
            action=promoted["action"],
            target=promoted["target"],
        )
        assert await AuditActivities(sessions(engine)).record_event(again) is False
    finally:
        await engine.dispose()
    assert len(await signalled()) == 2

    resp = await s.http.get("/api/v1/audit/verify", headers=s.auth())
    assert resp.status_code == 200, resp.text
    assert resp.json()["intact"], resp.json()
