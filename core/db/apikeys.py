"""API keys: created once, shown once, stored as argon2 hashes, looked up by their prefix."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.tables import ApiKeyRow, utcnow
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models.apikeys import ApiKeyCreated, ApiKeyInfo, ApiKeyRotated, Principal, Role
from core.models.scopes import Grant

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
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        rotated_at=row.rotated_at,
        replaced_by=row.replaced_by,
        grace_until=row.grace_until,
        grants=None if (grants := grants_of(row)) is None else list(grants),
    )


def grants_of(row: ApiKeyRow) -> tuple[Grant, ...] | None:
    """The key's grants as stored; None for an unscoped key."""
    if row.grants is None:
        return None
    return tuple(Grant.model_validate(g) for g in row.grants)


def _stored(grants: tuple[Grant, ...] | None) -> list[dict[str, object]] | None:
    return None if grants is None else [g.model_dump(mode="json") for g in grants]


def check_lifetime(
    role: Role, lifetime_seconds: float | None, max_days: Mapping[Role, int] | None
) -> None:
    """Refuse a lifetime the policy (R2C_APIKEY_MAX_LIFETIME_DAYS) does not allow for `role`."""
    limit = (max_days or {}).get(role)
    if limit is None:
        return
    if lifetime_seconds is None:
        raise InvalidInputError(
            f"{role.value} keys must expire within {limit} days; this key would never expire",
            hint=f'give an expiry, e.g. "expires_in": "{limit}d" (--expires-in {limit}d)',
        )
    if lifetime_seconds > limit * 86400:
        raise InvalidInputError(
            f"{role.value} keys must expire within {limit} days; this key would live longer",
            hint=f"ask for at most {limit}d (R2C_APIKEY_MAX_LIFETIME_DAYS)",
        )


async def create(
    session: AsyncSession,
    name: str,
    role: Role,
    created_by: str | None,
    key: str | None = None,
    *,
    expires_in: float | None = None,
    max_lifetime_days: Mapping[Role, int] | None = None,
    grants: tuple[Grant, ...] | None = None,
) -> ApiKeyCreated:
    """Store a new key; `key` imports a given one (the `R2C_ADMIN_API_KEY` case). A key of a
    role that `max_lifetime_days` lists must expire within it (`expires_in`, seconds)."""
    check_lifetime(role, expires_in, max_lifetime_days)
    active = await session.execute(
        select(ApiKeyRow.id).where(
            ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None), ApiKeyRow.replaced_by.is_(None)
        )
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
    row = _new_row(name, role, prefix, key, created_by, expires_in)
    row.grants = _stored(grants)
    session.add(row)
    await session.flush()
    return ApiKeyCreated(**_info(row).model_dump(), key=key)


def _new_row(
    name: str, role: Role, prefix: str, key: str, created_by: str | None, lifetime: float | None
) -> ApiKeyRow:
    now = utcnow()
    return ApiKeyRow(
        id=str(uuid.uuid4()),
        name=name,
        role=role.value,
        prefix=prefix,
        key_hash=hash_key(key),
        created_at=now,
        created_by=created_by,
        expires_at=None if lifetime is None else now + timedelta(seconds=lifetime),
    )


async def rotate(
    session: AsyncSession,
    key_id: str,
    grace_seconds: float,
    created_by: str | None,
    *,
    expires_in: float | None = None,
    max_lifetime_days: Mapping[Role, int] | None = None,
) -> ApiKeyRotated:
    """Replace an active key by a new one (same name and role); the old one keeps working for
    `grace_seconds`. The new key lives `expires_in`, by default as long as the old one did."""
    row = await session.get(ApiKeyRow, key_id)
    if row is None:
        raise NotFoundError(f"no API key {key_id!r}", hint="list them with GET /api/v1/apikeys")
    now = utcnow()
    if row.revoked_at is not None:
        raise ConflictError(
            f"API key {key_id!r} is revoked: there is nothing to rotate",
            hint="create a new key instead (POST /api/v1/apikeys)",
        )
    if row.replaced_by is not None:
        raise ConflictError(
            f"API key {key_id!r} was already rotated; its replacement is {row.replaced_by}",
            hint=f"rotate the new key ({row.replaced_by}) if you need another secret",
        )
    if row.expires_at is not None and row.expires_at <= now:
        raise ConflictError(
            f"API key {key_id!r} has expired: there is nothing to rotate",
            hint="create a new key instead (POST /api/v1/apikeys)",
        )
    if expires_in is None and row.expires_at is not None:
        expires_in = (row.expires_at - row.created_at).total_seconds()
    role = Role(row.role)
    check_lifetime(role, expires_in, max_lifetime_days)
    key, prefix = new_key()
    new = _new_row(row.name, role, prefix, key, created_by, expires_in)
    new.grants = row.grants  # the new secret does what the old one did, no more
    grace_until = now + timedelta(seconds=grace_seconds)
    # Conditional on the old key still being unrotated and active: of two rotations racing,
    # exactly one wins, and the other is refused instead of leaving two successors.
    claimed = await session.execute(
        update(ApiKeyRow)
        .where(
            ApiKeyRow.id == key_id,
            ApiKeyRow.replaced_by.is_(None),
            ApiKeyRow.revoked_at.is_(None),
        )
        .values(rotated_at=now, replaced_by=new.id, grace_until=grace_until)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(
            f"API key {key_id!r} was rotated or revoked meanwhile",
            hint="list the keys (GET /api/v1/apikeys) to see its replacement",
        )
    session.add(new)
    await session.flush()
    return ApiKeyRotated(
        **_info(new).model_dump(), key=key, replaces=key_id, old_key_works_until=grace_until
    )


@dataclass(frozen=True)
class Standing:
    """When an active key stops working, and why: its expiry or the end of a rotation grace."""

    ends_at: datetime | None
    reason: Literal["expired", "rotated"] | None

    def ended(self, now: datetime) -> Literal["expired", "rotated"] | None:
        if self.ends_at is not None and now >= self.ends_at:
            return self.reason
        return None


def standing(row: ApiKeyRow) -> Standing:
    ends: list[tuple[datetime, Literal["expired", "rotated"]]] = []
    if row.expires_at is not None:
        ends.append((row.expires_at, "expired"))
    if row.grace_until is not None:
        ends.append((row.grace_until, "rotated"))
    if not ends:
        return Standing(None, None)
    at, reason = min(ends, key=lambda end: end[0])
    return Standing(at, reason)


async def record_use(session: AsyncSession, key_id: str, at: datetime) -> None:
    """Note that a key was used (callers limit how often: this is a write)."""
    await session.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.id == key_id)
        .values(last_used_at=at)
        .execution_options(synchronize_session=False)
    )


async def list_all(session: AsyncSession, *, include_revoked: bool = False) -> list[ApiKeyInfo]:
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
    if not include_revoked:
        query = query.where(ApiKeyRow.revoked_at.is_(None))
    return [_info(r) for r in (await session.execute(query)).scalars()]


async def revoke(session: AsyncSession, ref: str) -> ApiKeyInfo:
    """Revoke an active key by id or by name (a name means its current key, not one rotated
    and still in its grace: revoke that one by id)."""
    row = (
        await session.execute(
            select(ApiKeyRow).where(
                or_(
                    ApiKeyRow.id == ref,
                    and_(ApiKeyRow.name == ref, ApiKeyRow.replaced_by.is_(None)),
                ),
                ApiKeyRow.revoked_at.is_(None),
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


async def standing_of(session: AsyncSession, key_id: str) -> Standing | None:
    """The standing of an unrevoked key; None if it is revoked or gone."""
    row = await session.get(ApiKeyRow, key_id)
    return None if row is None or row.revoked_at is not None else standing(row)


def principal(row: ApiKeyRow) -> Principal:
    return Principal(key_id=row.id, name=row.name, role=Role(row.role), grants=grants_of(row))
