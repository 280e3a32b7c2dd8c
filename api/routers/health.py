"""`/health` (the process is alive) and `/ready` (its dependencies answer)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.client import Client

from api.schemas import Readiness

router = APIRouter(tags=["health"])
log = logging.getLogger("r2c.api")

CHECK_TIMEOUT = 3.0
Check = Literal["ok", "unreachable"]


@router.get("/health")
async def health() -> dict[str, str]:
    """Answers as long as the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is not reachable"}},
)
async def ready(request: Request) -> JSONResponse:
    """Ready when both Temporal and the store answer; 503 names the one that does not. The
    reason (hosts, users, errors) goes to the log only: this route needs no key."""
    store, temporal = await asyncio.gather(
        _check("store", _store(request.app.state.sessions)),
        _check("temporal", _temporal(request.app.state.gateway.client)),
    )
    deps: dict[str, Check] = {"store": store, "temporal": temporal}
    failing = [name for name, result in deps.items() if result != "ok"]
    body = Readiness(
        status="not ready" if failing else "ready",
        dependencies=deps,
        message=f"not reachable: {', '.join(failing)}" if failing else None,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503 if failing else 200)


async def _check(name: str, probe: Any) -> Check:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            if await probe:
                return "ok"
            log.warning("readiness: %s answered not serving", name)
    except Exception as err:
        log.warning("readiness: %s unreachable: %s: %s", name, type(err).__name__, err)
    return "unreachable"


async def _store(sessions: Any) -> bool:
    async with sessions() as session:
        await session.execute(text("SELECT 1"))
    return True


async def _temporal(client: Client) -> bool:
    return bool(await client.service_client.check_health())
