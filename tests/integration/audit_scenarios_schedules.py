"""Audit scenarios of the schedules routes (issue 10): one per mutating route."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.system import System

Request = tuple[str, str, dict[str, Any] | None]
API = "/api/v1/schedules"
# Hourly: nothing fires during a test (trigger and backfill start runs on purpose).
HOURLY: dict[str, Any] = {
    "type": "component-health-check",
    "input": {},
    "spec": {"intervals": [{"every": "1h"}]},
}


async def _made(s: System) -> str:
    name = f"audit-{uuid.uuid4().hex[:8]}"
    resp = await s.http.post(API, json={"id": name, **HOURLY}, headers=s.auth())
    assert resp.status_code == 201, resp.text
    return f"{API}/{name}"


async def create(s: System) -> Request:
    return "POST", API, {"id": f"audit-{uuid.uuid4().hex[:8]}", **HOURLY}


async def replace(s: System) -> Request:
    return "PUT", await _made(s), {**HOURLY, "note": "replaced"}


async def pause(s: System) -> Request:
    return "POST", f"{await _made(s)}/pause", {"note": "why"}


async def unpause(s: System) -> Request:
    return "POST", f"{await _made(s)}/unpause", {"note": "again"}


async def trigger(s: System) -> Request:
    return "POST", f"{await _made(s)}/trigger", {}


async def backfill(s: System) -> Request:
    window = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-01T01:00:00Z"}
    return "POST", f"{await _made(s)}/backfill", window


async def delete(s: System) -> Request:
    return "DELETE", await _made(s), None


SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {
    ("POST", API): create,
    ("PUT", f"{API}/{{schedule_id}}"): replace,
    ("POST", f"{API}/{{schedule_id}}/pause"): pause,
    ("POST", f"{API}/{{schedule_id}}/unpause"): unpause,
    ("POST", f"{API}/{{schedule_id}}/trigger"): trigger,
    ("POST", f"{API}/{{schedule_id}}/backfill"): backfill,
    ("DELETE", f"{API}/{{schedule_id}}"): delete,
}
