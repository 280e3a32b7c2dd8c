"""`r2c apikey ...`: key management straight on the store (works while the API is down)."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import typer
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import apikeys, audit
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.errors import R2CError
from core.models.apikeys import KeyLifetime, Role, RotationGrace
from core.models.scopes import ALL, ScopeSpec, describe, grants_for
from core.settings import Settings

_lifetime: TypeAdapter[float] = TypeAdapter(KeyLifetime)
_grace: TypeAdapter[float] = TypeAdapter(RotationGrace)


def parse_lifetime(text: str | None) -> float | None:
    """`--expires-in` in seconds (1s..3650d); a usage error for anything else."""
    if text is None:
        return None
    try:
        return _lifetime.validate_python(text)
    except ValidationError:
        raise typer.BadParameter(
            f"{text!r}: expected a duration from 1s to 3650d, e.g. 30d or 12h"
        ) from None


def parse_grace(text: str) -> float:
    """`--grace` in seconds (0s..7d); a usage error for anything else."""
    try:
        return _grace.validate_python(text)
    except ValidationError:
        raise typer.BadParameter(
            f"{text!r}: expected a duration from 0s to 7d, e.g. 1h or 2d"
        ) from None


def parse_scope(components: list[str] | None, environments: list[str] | None) -> ScopeSpec | None:
    """`--component`/`--environment` as one scope; None (unscoped) when neither is given."""
    if not components and not environments:
        return None
    try:
        return ScopeSpec(
            components=tuple(components or (ALL,)), environments=tuple(environments or (ALL,))
        )
    except ValidationError as err:
        problems = "; ".join(str(e["msg"]) for e in err.errors())
        raise typer.BadParameter(f"--component/--environment: {problems}") from None


def _actor() -> str:
    """Who acts from the command line: the operating-system user."""
    return f"cli:{getpass.getuser()}"


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[AsyncSession]:
    await asyncio.to_thread(upgrade, settings)
    engine = make_engine(settings)
    try:
        async with sessions(engine)() as session:
            yield session
    finally:
        await engine.dispose()


def _fail(err: R2CError) -> int:
    print(f"error: {err.message}" + (f" ({err.hint})" if err.hint else ""))
    return 1


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


async def create(
    settings: Settings,
    name: str,
    role: Role,
    expires_in: float | None = None,
    scope: ScopeSpec | None = None,
    *,
    read_everything: bool = True,
) -> int:
    grants = grants_for(role, None if scope is None else [scope], read_everything=read_everything)
    try:
        async with _store(settings) as session:
            created = await apikeys.create(
                session,
                name,
                role,
                created_by=_actor(),
                expires_in=expires_in,
                max_lifetime_days=settings.apikey_max_lifetime_days,
                grants=grants,
            )
            detail = {"role": role.value, "id": created.id, "scope": describe(grants)}
            if created.expires_at is not None:
                detail["expires_at"] = created.expires_at.isoformat()
            await audit.record(
                session, actor=_actor(), action="apikey.created", target=name, detail=detail
            )
            await session.commit()
    except R2CError as err:
        return _fail(err)
    print(created.key)
    expiry = f", expires {_when(created.expires_at)} UTC" if created.expires_at else ""
    print(f"# created {role.value} key {name!r} (id {created.id}{expiry}); it is not shown again")
    if grants is not None:
        print(f"# scope: {describe(grants)}")
    return 0


async def rotate(
    settings: Settings, key_id: str, grace: float, expires_in: float | None = None
) -> int:
    try:
        async with _store(settings) as session:
            rotated = await apikeys.rotate(
                session,
                key_id,
                grace,
                created_by=_actor(),
                expires_in=expires_in,
                max_lifetime_days=settings.apikey_max_lifetime_days,
            )
            detail = {
                "id": key_id,
                "new_id": rotated.id,
                "old_key_works_until": rotated.old_key_works_until.isoformat(),
            }
            if rotated.expires_at is not None:
                detail["expires_at"] = rotated.expires_at.isoformat()
            await audit.record(
                session,
                actor=_actor(),
                action="apikey.rotated",
                target=rotated.name,
                detail=detail,
            )
            await session.commit()
    except R2CError as err:
        return _fail(err)
    print(rotated.key)
    expiry = f", expires {_when(rotated.expires_at)} UTC" if rotated.expires_at else ""
    print(
        f"# rotated key {rotated.name!r}: new id {rotated.id}{expiry}; it is not shown again;"
        f" the old key works until {_when(rotated.old_key_works_until)} UTC"
    )
    return 0


async def list_keys(settings: Settings, include_revoked: bool) -> int:
    async with _store(settings) as session:
        keys = await apikeys.list_all(session, include_revoked=include_revoked)
    print(
        f"{'ID':36}  {'NAME':20}  {'ROLE':8}  {'PREFIX':17}  {'CREATED':19}  {'EXPIRES':19}  "
        f"{'LAST USED':19}  REVOKED/ROTATED  SCOPE"
    )
    for k in keys:
        ended = _when(k.revoked_at)
        if k.revoked_at is None and k.replaced_by is not None:
            ended = f"rotated, works until {_when(k.grace_until)}"
        print(
            f"{k.id:36}  {k.name[:20]:20}  {k.role.value:8}  {k.prefix:17}  "
            f"{_when(k.created_at):19}  {_when(k.expires_at):19}  {_when(k.last_used_at):19}  "
            f"{ended}  {describe(None if k.grants is None else tuple(k.grants))}"
        )
    return 0


async def revoke(settings: Settings, ref: str) -> int:
    try:
        async with _store(settings) as session:
            revoked = await apikeys.revoke(session, ref)
            await audit.record(
                session,
                actor=_actor(),
                action="apikey.revoked",
                target=revoked.name,
                detail={"id": revoked.id},
            )
            await session.commit()
    except R2CError as err:
        return _fail(err)
    print(f"revoked key {revoked.name!r} ({revoked.id}); the API stops accepting it within 5s")
    return 0
