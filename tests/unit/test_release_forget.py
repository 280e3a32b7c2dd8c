"""A release's child deployment prepared but never started (its target busy, or the release
stopping): its row is removed and, in the same transaction, the audit trail says it never ran
and why (its `deployment.created` event, written when it was prepared, stays in the chain)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from activities.releases import ReleaseActivities
from core.db import audit
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.db.tables import DeploymentRow
from core.models.releases import ForgetRequest
from core.settings import Settings


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[Any]]:
    settings = Settings(home=tmp_path / "home", postgres_url=None)
    await asyncio.to_thread(upgrade, settings)
    engine = make_engine(settings)
    yield sessions(engine)
    await engine.dispose()


async def test_a_child_never_started_is_removed_and_audited_as_not_started(
    db: async_sessionmaker[Any],
) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    async with db() as session:
        session.add(
            DeploymentRow(
                id="dep-1", component="api", environment="dev", version="v2",
                strategy="rolling", state="pending", workflow_id="deploy:api:dev",
                initiator="release:rel-1", request={}, created_at=at, updated_at=at,
            )
        )  # fmt: skip
        await session.commit()
    activities = ReleaseActivities(db, cast(Client, None), Settings())
    why = "the target is being deployed already"
    await activities.forget(ForgetRequest(deployment_id="dep-1", reason=why))
    await activities.forget(ForgetRequest(deployment_id="dep-1", reason=why))  # a retry
    async with db() as session:
        assert await session.get(DeploymentRow, "dep-1") is None
        events = [e for e in await audit.recent(session) if e.target == "dep-1"]
    assert [(e.action, e.actor) for e in events] == [("deployment.not_started", "release:rel-1")]
    assert events[0].detail["reason"] == why
