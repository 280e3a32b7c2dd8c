"""Audit scenarios for the `/api/v1/policies` routes: for each mutating route, what to set up
and which request then changes something (see `test_audit_trail.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.system import System

Request = tuple[str, str, dict[str, Any] | None]

POLICY = {"allowed_strategies": ["canary"], "rules": [{"name": "any", "expression": "true"}]}


async def put_policy(s: System) -> Request:
    return "PUT", "/api/v1/policies/prod", POLICY


async def delete_policy(s: System) -> Request:
    resp = await s.http.put("/api/v1/policies/prod", json=POLICY, headers=s.auth())
    assert resp.status_code == 200, resp.text
    return "DELETE", "/api/v1/policies/prod", None


SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {
    ("PUT", "/api/v1/policies/{environment}"): put_policy,
    ("DELETE", "/api/v1/policies/{environment}"): delete_policy,
}
