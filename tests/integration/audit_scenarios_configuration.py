"""Audit scenarios for the `/api/v1/configuration` routes: for each mutating route, what to set up
and which request then changes something (see `test_audit_trail.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.system import System

Request = tuple[str, str, dict[str, Any] | None]


async def put_entry(s: System) -> Request:
    return "PUT", "/api/v1/configuration/db.pool_size", {"value": 5, "scope": {"component": "demo"}}


async def delete_entry(s: System) -> Request:
    resp = await s.http.put(
        "/api/v1/configuration/db.pool_size",
        json={"value": 5, "scope": {"environment": "dev"}},
        headers=s.auth(),
    )
    assert resp.status_code == 201, resp.text
    return "DELETE", "/api/v1/configuration/db.pool_size?environment=dev", None


async def rotate_secret(s: System) -> Request:
    resp = await s.http.put(
        "/api/v1/configuration/db.password",
        json={"value": "first-password", "scope": {"component": "demo"}, "secret": True},
        headers=s.auth(),
    )
    assert resp.status_code == 201, resp.text
    body = {"scope": {"component": "demo"}, "generate": {"length": 24}}
    return "POST", "/api/v1/configuration/db.password/rotate", body


SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {
    ("PUT", "/api/v1/configuration/{key}"): put_entry,
    ("DELETE", "/api/v1/configuration/{key}"): delete_entry,
    ("POST", "/api/v1/configuration/{key}/rotate"): rotate_secret,
}
