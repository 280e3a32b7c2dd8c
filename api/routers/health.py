"""`/health` (the process is alive) and `/ready` (its dependencies answer)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.client import Client

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 3.0


@router.get("/health")
async def health() -> dict[str, str]:
    """Answers as long as the process serves requests."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "a dependency is not reachable"}})
async def ready(request: Request) -> JSONResponse:
    """Ready when both Temporal and the store answer; 503 names the one that does not."""
    store, temporal = await asyncio.gather(
        _check_store(request.app.state.sessions), _check_temporal(request.app.state.temporal)
    )
    deps = {"store": store, "temporal": temporal}
    failing = [name for name, result in deps.items() if result != "ok"]
    body: dict[str, Any] = {"status": "ready" if not failing else "not ready", "dependencies": deps}
    if failing:
        body["message"] = f"not reachable: {', '.join(failing)}"
    return JSONResponse(body, status_code=503 if failing else 200)


async def _check_store(sessions: Any) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as err:
        return f"unreachable: {type(err).__name__}: {err}"[:300]
    return "ok"


async def _check_temporal(client: Client) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            ok = await client.service_client.check_health()
    except Exception as err:
        return f"unreachable: {type(err).__name__}: {err}"[:300]
    return "ok" if ok else "unreachable: health check answered not serving"
