"""`core.notify.emit` on the real store (SQLite, or PostgreSQL with R2C_TEST_DATABASE): one
message per wanting subscription, numbered in order, nothing twice for a retried producer, and
nothing when the producer's transaction rolls back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from core import notify
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.db.notifications_tables import OutboxRow, SubscriptionRow
from core.db.tables import utcnow
from core.settings import Settings

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)


@pytest.fixture
async def store(make_settings: Callable[..., Settings]) -> AsyncIterator[async_sessionmaker[Any]]:
    settings = make_settings()
    await asyncio.to_thread(upgrade, settings)
    engine = make_engine(settings)
    yield sessions(engine)
    await engine.dispose()


def subscription(sid: str, events: list[str], **filters: Any) -> SubscriptionRow:
    now = utcnow()
    return SubscriptionRow(
        id=sid,
        url="http://127.0.0.1:9/x",
        event_types=events,
        components=filters.get("components", []),
        environments=filters.get("environments", []),
        format="slack",
        description="",
        enabled=filters.get("enabled", True),
        secret_path=None,
        next_sequence=1,
        created_by="test",
        created_at=now,
        updated_at=now,
    )


async def emit(store: async_sessionmaker[Any], event_id: str, event: str = "deployment.started",
               component: str | None = "demo", environment: str | None = "prod",
               commit: bool = True) -> list[str]:  # fmt: skip
    async with store() as session:
        woken = await notify.emit(
            session,
            event,
            event_id=event_id,
            subject="deployments/d1",
            data={"component": component},
            component=component,
            environment=environment,
        )
        if commit:
            await session.commit()
    return woken


async def messages(store: async_sessionmaker[Any]) -> list[tuple[str, int, str]]:
    async with store() as session:
        rows = await session.execute(
            select(OutboxRow).order_by(OutboxRow.subscription_id, OutboxRow.sequence)
        )
        return [(r.subscription_id, r.sequence, r.event_id) for r in rows.scalars()]


async def test_each_subscription_that_wants_an_event_gets_it_once_in_order(
    store: async_sessionmaker[Any],
) -> None:
    async with store() as session:
        session.add_all(
            [
                subscription("ns_all", ["deployment.started", "component.unhealthy"]),
                subscription("ns_prod", ["deployment.started"], environments=["prod"]),
                subscription("ns_other", ["deployment.started"], components=["other"]),
                subscription("ns_types", ["deployment.failed"]),
                subscription("ns_off", ["deployment.started"], enabled=False),
                subscription("ns_health", ["component.unhealthy"], environments=["prod"]),
            ]
        )
        await session.commit()
    assert sorted(await emit(store, "e1")) == ["ns_all", "ns_prod"]
    # The producer retried: nothing queued twice, but the deliveries are woken again.
    assert sorted(await emit(store, "e1")) == ["ns_all", "ns_prod"]
    assert await emit(store, "e2", commit=False) == ["ns_all", "ns_prod"]  # rolled back
    assert sorted(await emit(store, "e3")) == ["ns_all", "ns_prod"]
    # An event that names no environment passes environment filters (health is per component).
    woken = await emit(store, "h1", "component.unhealthy", environment=None)
    assert sorted(woken) == ["ns_all", "ns_health"]
    assert await messages(store) == [
        ("ns_all", 1, "e1"),
        ("ns_all", 2, "e3"),
        ("ns_all", 3, "h1"),
        ("ns_health", 1, "h1"),
        ("ns_prod", 1, "e1"),
        ("ns_prod", 2, "e3"),
    ]


async def test_an_unknown_event_type_is_a_producer_bug(store: async_sessionmaker[Any]) -> None:
    with pytest.raises(ValueError, match="deployment.exploded"):
        await emit(store, "x1", "deployment.exploded")
