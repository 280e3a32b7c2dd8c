"""Audit scenarios of the stop-the-line routes (see `test_audit_trail.py`): setting the global
stop, and clearing it once set."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.system import System

Request = tuple[str, str, dict[str, Any] | None]
API = "/api/v1/stop-the-line"


async def stop(s: System) -> Request:
    return "PUT", API, {"reason": "audit"}


async def restart(s: System) -> Request:
    resp = await s.http.put(API, json={"reason": "audit"}, headers=s.auth())
    assert resp.status_code == 200, resp.text
    return "DELETE", API, None


SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {
    ("PUT", API): stop,
    ("DELETE", API): restart,
}
