"""Store access for notifications: subscriptions (the API), the outbox that `core.notify.emit`
fills in the producer's transaction, and the attempts the delivery activity records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.notifications_tables import AttemptRow, OutboxRow, SubscriptionRow
from core.errors import NotFoundError
from core.models.notifications import NotificationStatus

MAX_SUBSCRIPTIONS = 200


async def get(session: AsyncSession, subscription_id: str) -> SubscriptionRow:
    """One subscription; NotFoundError when there is none."""
    row = await session.get(SubscriptionRow, subscription_id)
    if row is None:
        raise NotFoundError(
            f"no notification subscription {subscription_id[:60]!r}",
            hint="GET /api/v1/notifications lists them",
        )
    return row


async def find(session: AsyncSession, subscription_id: str) -> SubscriptionRow | None:
    return await session.get(SubscriptionRow, subscription_id)


async def all_subscriptions(session: AsyncSession) -> list[SubscriptionRow]:
    """Every subscription, oldest first (there are at most MAX_SUBSCRIPTIONS)."""
    query = select(SubscriptionRow).order_by(SubscriptionRow.created_at, SubscriptionRow.id)
    return list((await session.execute(query)).scalars())


async def count(session: AsyncSession) -> int:
    total = await session.execute(select(func.count()).select_from(SubscriptionRow))
    return int(total.scalar() or 0)


async def remove(session: AsyncSession, subscription_id: str) -> None:
    """The subscription, its queued messages and its attempts. Not committed."""
    for table in (AttemptRow, OutboxRow):
        await session.execute(delete(table).where(table.subscription_id == subscription_id))
    await session.execute(delete(SubscriptionRow).where(SubscriptionRow.id == subscription_id))


def _wants(row: SubscriptionRow, event_type: str, component: str | None, env: str | None) -> bool:
    if not row.enabled or event_type not in row.event_types:
        return False
    # A filter skips events about another target. An event that names no environment (a
    # component's health is judged over all of them) or no component passes that filter.
    if row.components and component is not None and component not in row.components:
        return False
    return not (row.environments and env is not None and env not in row.environments)


async def matching(
    session: AsyncSession, event_type: str, component: str | None, environment: str | None
) -> list[SubscriptionRow]:
    """The enabled subscriptions that want this event, by type and target."""
    rows = await all_subscriptions(session)
    return [r for r in rows if _wants(r, event_type, component, environment)]


async def already_queued(session: AsyncSession, event_id: str) -> set[str]:
    """The subscriptions that hold this event already (a retried producer)."""
    query = select(OutboxRow.subscription_id).where(OutboxRow.event_id == event_id)
    return set((await session.execute(query)).scalars())


async def take_sequence(session: AsyncSession, subscription_id: str) -> int:
    """The subscription's next message number. The UPDATE locks the subscription's row until
    the producer commits, so numbers commit in the order they were taken."""
    result = await session.execute(
        update(SubscriptionRow)
        .where(SubscriptionRow.id == subscription_id)
        .values(next_sequence=SubscriptionRow.next_sequence + 1)
        .returning(SubscriptionRow.next_sequence)
    )
    return int(result.scalar_one()) - 1


async def pending(session: AsyncSession, subscription_id: str, limit: int) -> list[OutboxRow]:
    """The subscription's undelivered messages, in order."""
    query = (
        select(OutboxRow)
        .where(
            OutboxRow.subscription_id == subscription_id,
            OutboxRow.status == NotificationStatus.PENDING.value,
        )
        .order_by(OutboxRow.sequence)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def message(session: AsyncSession, outbox_id: str) -> OutboxRow | None:
    return await session.get(OutboxRow, outbox_id)


async def attempts(
    session: AsyncSession, subscription_id: str, limit: int, offset: int
) -> tuple[list[tuple[AttemptRow, OutboxRow]], int]:
    """The subscription's attempts, newest first, each with its message."""
    where = AttemptRow.subscription_id == subscription_id
    total = await session.execute(select(func.count()).select_from(AttemptRow).where(where))
    query = (
        select(AttemptRow, OutboxRow)
        .join(OutboxRow, OutboxRow.id == AttemptRow.outbox_id)
        .where(where)
        .order_by(AttemptRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    rows: list[Any] = list((await session.execute(query)).all())
    return [(a, o) for a, o in rows], int(total.scalar() or 0)
