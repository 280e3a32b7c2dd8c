"""API keys: created once, shown once, stored as argon2 hashes, looked up by their prefix."""

from __future__ import annotations

import secrets
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.tables import ApiKeyRow, utcnow
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models.apikeys import ApiKeyCreated, ApiKeyInfo, Principal, Role

KEY_SCHEME = "r2c"
_hasher = PasswordHasher()


def new_key() -> tuple[str, str]:
    """A fresh key and its prefix: `r2c_<prefix>_<secret>`."""
    prefix = secrets.token_hex(6)
    return f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def prefix_of(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1] or not parts[2]:
        return None
    return parts[1]


def hash_key(key: str) -> str:
    return _hasher.hash(key)


def verify_hash(key_hash: str, key: str) -> bool:
    """Constant-time check of a key against its stored hash (CPU-heavy: call off the loop)."""
    try:
        return _hasher.verify(key_hash, key)
    except (VerificationError, InvalidHashError):
        return False


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        prefix=f"{KEY_SCHEME}_{row.prefix}",
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


async def create(
    session: AsyncSession,
    name: str,
    role: Role,
    created_by: str | None,
    key: str | None = None,
) -> ApiKeyCreated:
    """Store a new key; `key` imports a given one (the `R2C_ADMIN_API_KEY` case)."""
    active = await session.execute(
        select(ApiKeyRow.id).where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
    )
    if active.first() is not None:
        raise ConflictError(
            f"an active API key named {name!r} exists", hint="revoke it first or pick another name"
        )
    if key is None:
        key, prefix = new_key()
    else:
        given_prefix = prefix_of(key)
        if given_prefix is None or len(key) < 24:
            raise InvalidInputError(
                "an imported key must look like r2c_<prefix>_<secret>, at least 24 characters",
                hint="generate one with `r2c apikey create` or leave R2C_ADMIN_API_KEY unset",
            )
        prefix = given_prefix
    row = ApiKeyRow(
        id=str(uuid.uuid4()),
        name=name,
        role=role.value,
        prefix=prefix,
        key_hash=hash_key(key),
        created_at=utcnow(),
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return ApiKeyCreated(**_info(row).model_dump(), key=key)


async def list_all(session: AsyncSession, *, include_revoked: bool = False) -> list[ApiKeyInfo]:
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
    if not include_revoked:
        query = query.where(ApiKeyRow.revoked_at.is_(None))
    return [_info(r) for r in (await session.execute(query)).scalars()]


async def revoke(session: AsyncSession, ref: str) -> ApiKeyInfo:
    """Revoke an active key by id or by name."""
    row = (
        await session.execute(
            select(ApiKeyRow).where(
                or_(ApiKeyRow.id == ref, ApiKeyRow.name == ref), ApiKeyRow.revoked_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no active API key {ref!r}", hint="list them with GET /api/v1/apikeys")
    row.revoked_at = utcnow()
    await session.flush()
    return _info(row)


async def find_by_key(session: AsyncSession, key: str) -> tuple[ApiKeyRow, str] | None:
    """The active row whose prefix the key carries, with its hash; None if there is none."""
    prefix = prefix_of(key)
    if prefix is None:
        return None
    row = (
        await session.execute(
            select(ApiKeyRow).where(ApiKeyRow.prefix == prefix, ApiKeyRow.revoked_at.is_(None))
        )
    ).scalar_one_or_none()
    return None if row is None else (row, row.key_hash)


async def is_active(session: AsyncSession, key_id: str) -> bool:
    row = await session.get(ApiKeyRow, key_id)
    return row is not None and row.revoked_at is None


def principal(row: ApiKeyRow) -> Principal:
    return Principal(key_id=row.id, name=row.name, role=Role(row.role))
