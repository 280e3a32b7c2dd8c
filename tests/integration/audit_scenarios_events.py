"""Audit scenarios of the events routes (issue 10): one per mutating route.

Webhook deliveries are left out of `test_audit_trail.py` (their credential is a signature,
and their actor `webhook:<source>`); tests/integration/test_webhooks.py checks their one
audit event."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.integration.system import System

Request = tuple[str, str, dict[str, Any] | None]

ROUTE = {
    "match": {"type": "com.example.build.*"},
    "start": {"workflow_type": "component-health-check", "input": {}},
}
SOURCE = {"name": "ci", "kind": "hmac", "secret": "audit-scenario-secret-0123456789"}


async def _as_cloudevent(request: httpx.Request) -> None:
    # The audit test sends `json=`; a structured CloudEvent says so in its Content-Type.
    if request.url.path == "/api/v1/events":
        request.headers["Content-Type"] = "application/cloudevents+json"


async def receive_event(s: System) -> Request:
    s.http.event_hooks["request"].append(_as_cloudevent)
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/audit", "type": "x.y"}
    return "POST", "/api/v1/events", event


async def create_route(s: System) -> Request:
    return "POST", "/api/v1/event-routes", {"name": "builds", **ROUTE}


async def _route(s: System) -> None:
    resp = await s.http.post(
        "/api/v1/event-routes", json={"name": "builds", **ROUTE}, headers=s.auth()
    )
    assert resp.status_code == 201, resp.text


async def replace_route(s: System) -> Request:
    await _route(s)
    return "PUT", "/api/v1/event-routes/builds", {**ROUTE, "enabled": False}


async def delete_route(s: System) -> Request:
    await _route(s)
    return "DELETE", "/api/v1/event-routes/builds", None


async def create_source(s: System) -> Request:
    return "POST", "/api/v1/webhook-sources", SOURCE


async def _source(s: System) -> None:
    resp = await s.http.post("/api/v1/webhook-sources", json=SOURCE, headers=s.auth())
    assert resp.status_code == 201, resp.text


async def rotate_source(s: System) -> Request:
    await _source(s)
    return "POST", "/api/v1/webhook-sources/ci/rotate", {"secret": "another-secret-0123456789"}


async def delete_source(s: System) -> Request:
    await _source(s)
    return "DELETE", "/api/v1/webhook-sources/ci", None


SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {
    ("POST", "/api/v1/events"): receive_event,
    ("POST", "/api/v1/event-routes"): create_route,
    ("PUT", "/api/v1/event-routes/{name}"): replace_route,
    ("DELETE", "/api/v1/event-routes/{name}"): delete_route,
    ("POST", "/api/v1/webhook-sources"): create_source,
    ("POST", "/api/v1/webhook-sources/{name}/rotate"): rotate_source,
    ("DELETE", "/api/v1/webhook-sources/{name}"): delete_source,
}
