"""Per-request dependencies: the store session, the Temporal client, the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from core.settings import Settings


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for the request. Routes commit explicitly before answering; anything not
    committed is rolled back when the session closes, so a failed request changes nothing."""
    async with request.app.state.sessions() as session:
        yield session


# `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, two
# thread hops per request just to read app.state.
async def _temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[AsyncSession, Depends(_session)]
TemporalDep = Annotated[Client, Depends(_temporal)]
SettingsDep = Annotated[Settings, Depends(_settings)]
