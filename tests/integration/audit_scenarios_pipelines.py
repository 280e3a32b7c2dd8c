"""Audit scenarios of the pipelines routes (issue 13): one per mutating route.

A run's first stage waits for an approval, so nothing else (a stage's release, audited as
`pipeline:<name>`) happens during the request; the hold to release is put in the store as the
pipeline's gate check would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from core.db.engine import make_engine, sessions
from core.db.pipelines import add_verified, set_hold
from tests.integration.system import System
from tests.support import wait_for

Request = tuple[str, str, dict[str, Any] | None]
API = "/api/v1/pipelines"
STAGES = [
    {"environment": "dev", "gates": {"approval": {"role": "operator"}}},
    {"environment": "staging"},
]


async def _pipeline(s: System, name: str = "audit") -> str:
    body = {"name": name, "stages": STAGES}
    resp = await s.http.post(API, json=body, headers=s.auth())
    assert resp.status_code == 201, resp.text
    return f"{API}/{name}"


async def create(s: System) -> Request:
    return "POST", API, {"name": "audit", "stages": STAGES}


async def replace(s: System) -> Request:
    return "PUT", await _pipeline(s), {"stages": STAGES[:1]}


async def delete(s: System) -> Request:
    return "DELETE", await _pipeline(s), None


async def start_run(s: System) -> Request:
    return "POST", f"{await _pipeline(s)}/runs", {"components": {"demo": "v1"}}


async def act(s: System) -> Request:
    url = await _pipeline(s)
    resp = await s.http.post(f"{url}/runs", json={"components": {"demo": "v1"}}, headers=s.auth())
    assert resp.status_code == 202, resp.text
    run = f"{url}/runs/{resp.json()['id']}"

    async def waits() -> bool:
        got = (await s.http.get(run, headers=s.auth())).json()
        stages = (got.get("status") or {}).get("stages") or []
        return bool(stages) and stages[0]["waiting_on"] == "approval"

    await wait_for(waits, within=30, what="the run to wait for its approval")
    return "POST", f"{run}/pause", None


async def release_hold(s: System) -> Request:
    url = await _pipeline(s)
    engine = make_engine(s.settings)
    try:
        async with sessions(engine)() as session:
            await set_hold(
                session, "audit", "staging", "by hand", "pipeline:audit", datetime.now(UTC)
            )
            await session.commit()
    finally:
        await engine.dispose()
    return "DELETE", f"{url}/holds/staging", None


async def propagate_rollback(s: System) -> Request:
    """dev serves an older combination than staging, which staging verified before. The
    component is not registered: the run's release fails after the request, unaudited by it."""
    url = await _pipeline(s)
    old, new = {"audit-x": "v1"}, {"audit-x": "v2"}
    at = datetime.now(UTC)
    engine = make_engine(s.settings)
    try:
        async with sessions(engine)() as session:
            await add_verified(session, "audit", "staging", old, "r1", at - timedelta(hours=2))
            await add_verified(session, "audit", "staging", new, "r2", at - timedelta(hours=1))
            await add_verified(session, "audit", "dev", old, "r1", at)
            await session.commit()
    finally:
        await engine.dispose()
    return "POST", f"{url}/environments/dev/propagate-rollback", {"reason": "audit"}


async def stop(s: System) -> Request:
    return "PUT", f"{await _pipeline(s)}/stop", {"reason": "audit"}


async def restart(s: System) -> Request:
    url = await _pipeline(s)
    resp = await s.http.put(f"{url}/stop", json={"reason": "audit"}, headers=s.auth())
    assert resp.status_code == 200, resp.text
    return "DELETE", f"{url}/stop", None


SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {
    ("POST", API): create,
    ("PUT", f"{API}/{{name}}"): replace,
    ("DELETE", f"{API}/{{name}}"): delete,
    ("POST", f"{API}/{{name}}/runs"): start_run,
    ("POST", f"{API}/{{name}}/runs/{{run_id}}/{{action}}"): act,
    ("DELETE", f"{API}/{{name}}/holds/{{environment}}"): release_hold,
    ("POST", f"{API}/{{name}}/environments/{{environment}}/propagate-rollback"): (
        propagate_rollback
    ),
    ("PUT", f"{API}/{{name}}/stop"): stop,
    ("DELETE", f"{API}/{{name}}/stop"): restart,
}
