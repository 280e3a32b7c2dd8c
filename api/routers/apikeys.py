"""`/api/v1/apikeys`: create, list and revoke API keys (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from api.auth import Admin, KeyVerifier
from api.deps import SessionDep
from api.openapi import errors
from api.services import audit
from core.db import apikeys
from core.models.apikeys import ApiKeyCreate, ApiKeyCreated, ApiKeyInfo

router = APIRouter(prefix="/api/v1/apikeys", tags=["api keys"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated, responses=errors(409)
)
async def create_key(body: ApiKeyCreate, principal: Admin, session: SessionDep) -> ApiKeyCreated:
    """Create a key. The answer is the only time the key itself is shown: store it safely."""
    created = await apikeys.create(session, body.name, body.role, principal.initiator)
    await audit.commit(
        session, principal, "apikey.created", body.name, role=body.role.value, id=created.id
    )
    return created


@router.get("", response_model=list[ApiKeyInfo])
async def list_keys(
    _: Admin,
    session: SessionDep,
    include_revoked: Annotated[bool, Query()] = False,
) -> list[ApiKeyInfo]:
    """Every key, without the keys themselves."""
    return await apikeys.list_all(session, include_revoked=include_revoked)


@router.delete("/{key_ref}", response_model=ApiKeyInfo)
async def revoke_key(
    key_ref: str, request: Request, principal: Admin, session: SessionDep
) -> ApiKeyInfo:
    """Revoke a key by id or name; it stops working at once."""
    revoked = await apikeys.revoke(session, key_ref)
    await audit.commit(session, principal, "apikey.revoked", revoked.name, id=revoked.id)
    verifier: KeyVerifier = request.app.state.keys
    verifier.forget(revoked.id)
    return revoked
