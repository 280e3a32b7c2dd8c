"""Audit scenarios for the API key lifecycle routes (issue 12): rotation (see
`test_audit_trail.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.system import System

Request = tuple[str, str, dict[str, Any] | None]


async def rotate_key(s: System) -> Request:
    created = await s.http.post(
        "/api/v1/apikeys", json={"name": "rotated-key", "role": "viewer"}, headers=s.auth()
    )
    assert created.status_code == 201, created.text
    return "POST", f"/api/v1/apikeys/{created.json()['id']}/rotate", {"grace": "1m"}


SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {
    ("POST", "/api/v1/apikeys/{key_id}/rotate"): rotate_key,
}
