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
from core.secrets import SecretStore

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
    """Ready when Temporal, the store and (when one is configured) Vault answer; 503 names
    the one that does not. Redis (when configured) is reported, never a reason for 503. The
    reason (hosts, users, errors) goes to the log only: this route needs no key."""
    probes = {
        "store": _store(request.app.state.sessions),
        "temporal": _temporal(request.app.state.gateway.client),
    }
    if request.app.state.settings.vault_url:
        probes["vault"] = _vault(request.app.state.secrets)
    shared = request.app.state.shared_auth
    if shared is not None:
        probes["redis"] = shared.ping()
    results = await asyncio.gather(*(_check(name, probe) for name, probe in probes.items()))
    deps: dict[str, Check] = dict(zip(probes, results, strict=True))
    # Redis is shown but does not make the API unready: without it each replica verifies
    # keys alone (revocations reach the others within their re-check, not at once).
    failing = [name for name, result in deps.items() if result != "ok" and name != "redis"]
    message = f"not reachable: {', '.join(failing)}" if failing else None
    if deps.get("redis") == "unreachable":
        degraded = "Redis unreachable: keys verified, limited and revoked per replica"
        message = f"{message}; {degraded}" if message else degraded
    body = Readiness(
        status="not ready" if failing else "ready",
        dependencies=deps,
        message=message,
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


async def _vault(secrets: SecretStore) -> bool:
    await secrets.check()
    return True


async def _temporal(client: Client) -> bool:
    return bool(await client.service_client.check_health())
