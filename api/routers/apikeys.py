"""`/api/v1/apikeys`: create, list, rotate and revoke API keys (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from api.auth import Admin
from api.deps import SessionDep
from api.key_verifier import KeyVerifier
from api.openapi import errors
from api.services import audit
from core.db import apikeys
from core.models.apikeys import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyRotate,
    ApiKeyRotated,
)
from core.models.scopes import describe, grants_for

router = APIRouter(prefix="/api/v1/apikeys", tags=["api keys"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=errors(409, 422),
)
async def create_key(
    body: ApiKeyCreate, request: Request, principal: Admin, session: SessionDep
) -> ApiKeyCreated:
    """Create a key, optionally expiring (`expires_in`, required for the roles that
    R2C_APIKEY_MAX_LIFETIME_DAYS lists, within their limit: else 422). The answer is the only
    time the key itself is shown: store it safely. With `scopes`, the key's role applies to
    those components and environments only (plus reading everything unless
    `read_everything` is false; docs/apikeys.md)."""
    grants = grants_for(body.role, body.scopes, read_everything=body.read_everything)
    created = await apikeys.create(
        session,
        body.name,
        body.role,
        principal.initiator,
        expires_in=body.expires_in,
        max_lifetime_days=request.app.state.settings.apikey_max_lifetime_days,
        grants=grants,
    )
    await audit.commit(
        session,
        principal,
        "apikey.created",
        body.name,
        role=body.role.value,
        id=created.id,
        scope=describe(grants),
        expires_at=created.expires_at.isoformat() if created.expires_at else None,
    )
    return created


@router.post(
    "/{key_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyRotated,
    responses=errors(404, 409, 422),
)
async def rotate_key(
    key_id: str, body: ApiKeyRotate, request: Request, principal: Admin, session: SessionDep
) -> ApiKeyRotated:
    """Replace a key by a new one with the same name and role (shown this once). The old key
    keeps working for `grace` (0s..7d), then is refused as rotated. A revoked, expired or
    already rotated key is a 409 (the latter names its replacement)."""
    rotated = await apikeys.rotate(
        session,
        key_id,
        body.grace,
        principal.initiator,
        expires_in=body.expires_in,
        max_lifetime_days=request.app.state.settings.apikey_max_lifetime_days,
    )
    await audit.commit(
        session,
        principal,
        "apikey.rotated",
        rotated.name,
        id=key_id,
        new_id=rotated.id,
        old_key_works_until=rotated.old_key_works_until.isoformat(),
        expires_at=rotated.expires_at.isoformat() if rotated.expires_at else None,
    )
    verifier: KeyVerifier = request.app.state.keys
    verifier.forget(key_id)  # its cached standing predates the grace
    return rotated


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
