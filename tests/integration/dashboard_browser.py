"""A browser's side of the dashboard over HTTP, for the dashboard's contract and RBAC tests: a
client with its own cookie jar, signed in with a key, and the CSRF token of its session."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from starlette.routing import Mount

from tests.integration.system import System

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def browser(system: System) -> httpx.AsyncClient:
    """A client of its own (its own cookie jar), as one browser."""
    return httpx.AsyncClient(transport=system.http._transport, base_url="http://api")


def dashboard_app(system: System) -> FastAPI:
    """The dashboard application the API mounts at /ui."""
    app = system.http._transport.app  # type: ignore[attr-defined]
    (mounted,) = [r for r in app.routes if isinstance(r, Mount) and r.path == "/ui"]
    assert isinstance(mounted.app, FastAPI)
    return mounted.app


async def csrf_of(http: httpx.AsyncClient, path: str = "/ui/login") -> str:
    resp = await http.get(path)
    assert resp.status_code == 200, resp.text
    found = CSRF.search(resp.text)
    assert found, resp.text
    return found.group(1)


async def signed_in(system: System, key: str) -> tuple[httpx.AsyncClient, str]:
    """A new browser signed in with `key`, and its session's CSRF token."""
    http = browser(system)
    token = await csrf_of(http)
    resp = await http.post("/ui/login/key", data={"csrf_token": token, "api_key": key})
    assert resp.status_code == 303, resp.text
    return http, await csrf_of(http, "/ui/components")
