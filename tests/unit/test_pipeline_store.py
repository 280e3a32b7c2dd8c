"""The pipeline's store on SQLite: a change by a person since the verification (a rollback, a
deployment by hand) is what sets a hold, a release's is not, and a released hold is not set
again for the same change; a run that verifies an older combination again holds too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from activities.pipelines import PipelineActivities, manual_change
from core.db import pipelines as store
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.db.tables import DeploymentRow
from core.models.pipelines import VerifiedRecord
from core.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[Any]]:
    settings = Settings(home=tmp_path / "home", postgres_url=None)
    await asyncio.to_thread(upgrade, settings)
    engine = make_engine(settings)
    yield sessions(engine)
    await engine.dispose()


def _deployment(n: int, version: str, initiator: str, at: datetime, **extra: Any) -> DeploymentRow:
    return DeploymentRow(
        id=f"dep-{n}", component="api", environment="dev", version=version, strategy="rolling",
        state="succeeded", workflow_id=f"deploy:api:dev:{n}", initiator=initiator, request={},
        created_at=at, updated_at=at, **extra,
    )  # fmt: skip


async def test_a_person_s_rollback_holds_a_release_does_not(
    db: async_sessionmaker[Any],
) -> None:
    async with db() as session:
        await store.add_verified(session, "p", "dev", {"api": "v2"}, "run-1", T0)
        session.add(_deployment(1, "v2", "release:rel-1", T0 - timedelta(minutes=1)))
        await session.commit()
        assert await manual_change(session, "p", "dev") is None
        session.add(_deployment(2, "v3", "release:rel-2", T0 + timedelta(minutes=1)))
        await session.commit()
        assert await manual_change(session, "p", "dev") is None  # automation's own
        session.add(
            _deployment(3, "v1", "apikey:ops", T0 + timedelta(minutes=2), rollback_of="dep-2")
        )
        await session.commit()
        why = await manual_change(session, "p", "dev")
        assert why is not None and "api was rolled back to v1 by apikey:ops" in why
        # Held, then released by an operator: the same change is not held on again.
        await store.set_hold(session, "p", "dev", why, "pipeline:p", T0 + timedelta(minutes=3))
        await store.release_hold(session, "p", "dev", T0 + timedelta(minutes=4))
        await session.commit()
        assert await manual_change(session, "p", "dev") is None
        assert await store.holds(session, "p") == {}


async def test_verifying_an_older_combination_again_holds(db: async_sessionmaker[Any]) -> None:
    activities = PipelineActivities(db, cast(Client, None), Settings())

    async def verify(version: str, minutes: int) -> None:
        await activities.record_verified(
            VerifiedRecord(
                pipeline="p", environment="prod", components={"api": version},
                run_id=f"run-{version}", verified_at=T0 + timedelta(minutes=minutes),
            )
        )  # fmt: skip

    await verify("v1", 0)
    await verify("v2", 1)
    async with db() as session:
        assert await store.holds(session, "p") == {}
    await verify("v1", 2)
    async with db() as session:
        held = await store.holds(session, "p")
        assert "run run-v1 pinned an older combination" in held["prod"].reason
        current = await store.current(session, "p", "prod")
        assert current is not None and current.components == {"api": "v1"}
