"""Resolution of configuration entries on a real (SQLite) store: the most specific scope
wins, a deletion uncovers the next one, and revisions let the past be read again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import configuration as store
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.db.tables import DeploymentRow
from core.models.configuration import Scope, VersionAction
from core.settings import Settings


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[AsyncSession]:
    settings = Settings(home=tmp_path / "home", postgres_url=None)
    upgrade(settings)
    engine = make_engine(settings)
    try:
        async with sessions(engine)() as s:
            yield s
    finally:
        await engine.dispose()


async def put(
    session: AsyncSession,
    key: str,
    value: Any,
    component: str | None = None,
    environment: str | None = None,
    *,
    delete: bool = False,
) -> int:
    scope = Scope(component=component, environment=environment)
    revision = await store.take_revision(session)
    current = await store.newest(session, key, scope)
    await store.add_version(
        session,
        key,
        scope,
        expected_version=current.version.version if current else 0,
        revision=revision,
        action=VersionAction.DELETED if delete else VersionAction.SET,
        value=None if delete else value,
        secret=False,
        description="",
        actor="test",
    )
    await session.commit()
    return revision


async def values(session: AsyncSession, component: str | None, environment: str | None) -> Any:
    return {
        e.key: (e.value, e.source.component, e.source.environment)
        for e in await store.effective(session, component, environment)
    }


async def test_the_most_specific_scope_wins(session: AsyncSession) -> None:
    await put(session, "pool", 1)
    await put(session, "pool", 2, environment="prod")
    await put(session, "pool", 3, component="api")
    await put(session, "pool", 4, component="api", environment="prod")
    await put(session, "only.global", "g")

    assert (await values(session, "api", "prod"))["pool"] == (4, "api", "prod")
    assert (await values(session, "api", "dev"))["pool"] == (3, "api", None)
    assert (await values(session, "web", "prod"))["pool"] == (2, None, "prod")
    assert (await values(session, "web", None))["pool"] == (1, None, None)
    assert (await values(session, None, "prod"))["pool"] == (2, None, "prod")
    assert (await values(session, "api", None))["pool"] == (3, "api", None)
    assert (await values(session, "api", "prod"))["only.global"] == ("g", None, None)


async def test_a_deletion_uncovers_the_less_specific_value(session: AsyncSession) -> None:
    await put(session, "pool", 1)
    await put(session, "pool", 4, component="api", environment="prod")
    await put(session, "pool", None, component="api", environment="prod", delete=True)
    assert (await values(session, "api", "prod"))["pool"] == (1, None, None)
    await put(session, "pool", None, delete=True)
    assert "pool" not in await values(session, "api", "prod")


async def test_the_effective_set_as_of_a_revision_ignores_later_changes(
    session: AsyncSession,
) -> None:
    first = await put(session, "pool", 1)
    await put(session, "pool", 5, component="api")
    await put(session, "timeout", 30)
    old = {e.key: e.value for e in await store.effective(session, "api", "prod", first)}
    assert old == {"pool": 1}
    assert await store.latest_revision(session, "api", "prod") == first + 2
    assert await store.latest_revision(session, "web", None) == first + 2
    await put(session, "other", 1, component="web")
    assert await store.latest_revision(session, "api", "prod") == first + 2


async def test_latest_revision_is_zero_without_entries(session: AsyncSession) -> None:
    assert await store.latest_revision(session, "api", "prod") == 0
    assert await store.effective(session, "api", "prod") == []


async def test_a_component_is_checked_where_it_has_entries_or_deployments(
    session: AsyncSession,
) -> None:
    await put(session, "pool", 1, component="api", environment="qa")
    await put(session, "pool", 1, environment="prod")
    await put(session, "pool", 1, component="web", environment="dev")
    now = datetime.now(UTC)
    session.add(
        DeploymentRow(
            id="d1",
            component="api",
            environment="staging",
            version="v1",
            strategy="rolling",
            state="succeeded",
            workflow_id="w",
            initiator="test",
            request={},
            created_at=now,
            updated_at=now,
        )
    )
    await session.commit()
    assert await store.environments_of(session, "api") == {"qa", "staging"}


async def test_live_keys_counts_what_is_set_at_exactly_the_scope(session: AsyncSession) -> None:
    await put(session, "a", 1, component="api")
    await put(session, "b", 1, component="api")
    await put(session, "c", 1)
    await put(session, "b", None, component="api", delete=True)
    assert await store.live_keys(session, Scope(component="api")) == 1
    assert await store.live_keys(session, Scope()) == 1
