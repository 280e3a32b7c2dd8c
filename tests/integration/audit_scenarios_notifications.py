"""Audit scenarios of the notifications routes (issue 10): one per mutating route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.system import System

Request = tuple[str, str, dict[str, Any] | None]

SPEC = {"url": "http://127.0.0.1:9/hook", "event_types": ["deployment.succeeded"]}


async def _created(s: System) -> str:
    resp = await s.http.post("/api/v1/notifications", json=SPEC, headers=s.auth())
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def create_subscription(s: System) -> Request:
    return "POST", "/api/v1/notifications", SPEC


async def update_subscription(s: System) -> Request:
    sid = await _created(s)
    return "PUT", f"/api/v1/notifications/{sid}", {**SPEC, "enabled": False}


async def delete_subscription(s: System) -> Request:
    sid = await _created(s)
    return "DELETE", f"/api/v1/notifications/{sid}", None


async def rotate_secret(s: System) -> Request:
    sid = await _created(s)
    return "POST", f"/api/v1/notifications/{sid}/rotate-secret", None


SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {
    ("POST", "/api/v1/notifications"): create_subscription,
    ("PUT", "/api/v1/notifications/{subscription_id}"): update_subscription,
    ("DELETE", "/api/v1/notifications/{subscription_id}"): delete_subscription,
    ("POST", "/api/v1/notifications/{subscription_id}/rotate-secret"): rotate_secret,
}
