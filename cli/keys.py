"""`r2c apikey ...`: key management straight on the store (works while the API is down)."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import apikeys, audit
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.errors import R2CError
from core.models.apikeys import Role
from core.settings import Settings


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


async def create(settings: Settings, name: str, role: Role) -> int:
    try:
        async with _store(settings) as session:
            created = await apikeys.create(session, name, role, created_by=_actor())
            detail = {"role": role.value, "id": created.id}
            await audit.record(
                session, actor=_actor(), action="apikey.created", target=name, detail=detail
            )
            await session.commit()
    except R2CError as err:
        return _fail(err)
    print(created.key)
    print(f"# created {role.value} key {name!r} (id {created.id}); it is not shown again")
    return 0


async def list_keys(settings: Settings, include_revoked: bool) -> int:
    async with _store(settings) as session:
        keys = await apikeys.list_all(session, include_revoked=include_revoked)
    print(f"{'ID':36}  {'NAME':20}  {'ROLE':8}  {'PREFIX':17}  {'CREATED':20}  REVOKED")
    for k in keys:
        revoked = k.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if k.revoked_at else "-"
        print(
            f"{k.id:36}  {k.name[:20]:20}  {k.role.value:8}  {k.prefix:17}  "
            f"{k.created_at.strftime('%Y-%m-%d %H:%M:%S'):20}  {revoked}"
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
