"""Activities that deliver notifications: read a subscription's pending messages, POST one
(signed with a secret read from Vault here, at the edge: it never enters a workflow), record
each attempt, and give a message up."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.notification_messages import slack_body, standard_webhook
from core.db import notifications as store
from core.db.notifications_tables import AttemptRow, OutboxRow, SubscriptionRow
from core.db.tables import utcnow
from core.errors import R2CError
from core.models.notifications import (
    DELIVER_ACTIVITY,
    GIVE_UP_ACTIVITY,
    PENDING_ACTIVITY,
    URL_REFUSED,
    DeliverRequest,
    GiveUpRequest,
    NotificationStatus,
    PendingBatch,
    PendingMessage,
    PendingRequest,
)
from core.notification_urls import UrlRefused, check_resolved
from core.secrets import SecretStore
from core.settings import Settings
from core.vault import open_secret_store

EXCERPT = 200
DELIVERIES_METRIC = "r2c_notification_deliveries_total"


def signing_secrets(stored: dict[str, Any], now: datetime) -> list[str]:
    """The secret to sign with, and the one it replaced while that is still honoured."""
    found = [str(stored["signing_secret"])]
    until = stored.get("previous_until")
    if stored.get("previous") and until and datetime.fromisoformat(until) > now:
        found.append(str(stored["previous"]))
    return found


def _excerpt(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text[:EXCERPT])


class NotificationActivities:
    """Holds the store's sessions, one HTTP client and Vault (for the signing secrets)."""

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        http: httpx.AsyncClient,
        secrets: SecretStore,
        settings: Settings,
    ) -> None:
        self._sessions = sessions
        self._http = http
        self._secrets = secrets
        self._settings = settings

    @activity.defn(name=PENDING_ACTIVITY)
    async def pending(self, req: PendingRequest) -> PendingBatch:
        """The subscription's next messages in order, with the retry settings of this worker."""
        s = self._settings
        window = timedelta(seconds=s.notification_give_up_seconds)
        async with self._sessions() as session:
            if await store.find(session, req.subscription_id) is None:
                return PendingBatch(exists=False)
            rows = await store.pending(session, req.subscription_id, req.limit)
        return PendingBatch(
            exists=True,
            messages=[
                PendingMessage(
                    outbox_id=r.id, sequence=r.sequence, deliver_by=r.created_at + window
                )
                for r in rows
            ],
            initial_interval_seconds=s.notification_retry_initial_seconds,
            max_interval_seconds=s.notification_retry_max_seconds,
        )

    @activity.defn(name=DELIVER_ACTIVITY)
    async def deliver(self, req: DeliverRequest) -> None:
        """POST the message once; raise (so Temporal retries with backoff) unless it is
        accepted (2xx). A message already delivered, or of a deleted subscription, is done."""
        async with self._sessions() as session:
            message = await store.message(session, req.outbox_id)
            sub = await store.find(session, req.subscription_id)
        if message is None or sub is None or message.status != NotificationStatus.PENDING:
            return
        started = time.monotonic()
        status_code: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            await check_resolved(
                sub.url, allow_private=self._settings.notifications_private_allowed
            )
            body, headers = await self._request(sub, message)
            status_code, excerpt = await self._post(sub.url, body, headers)
        except UrlRefused as err:
            error = f"refused receiver: {err}"
        except (httpx.HTTPError, OSError) as err:
            # Never the URL itself in what operators read: a Slack URL carries its token.
            error = f"{type(err).__name__}: {err}".replace(sub.url, "<url>")[:500]
        except R2CError as err:  # Vault away, or the secret missing: retried like an outage
            error = f"signing secret unavailable: {err.message}"[:500]
        accepted = status_code is not None and 200 <= status_code < 300
        outcome = "delivered" if accepted else ("refused" if status_code else "error")
        _count_delivery(outcome)
        async with self._sessions() as session:
            await self._record(
                session, message.id, sub.id, outcome, status_code, excerpt, error, started
            )
        if accepted:
            return
        if error is not None and error.startswith("refused receiver"):
            raise ApplicationError(error, type=URL_REFUSED, non_retryable=True)
        raise ApplicationError(
            f"the receiver answered {status_code}" if status_code else str(error),
            type="ReceiverNotAccepting",
            # Expected while a receiver is down: retried quietly, not logged as a worker fault.
            category=ApplicationErrorCategory.BENIGN,
        )

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """POST, and read no more of the answer than the excerpt keeps (a receiver could
        answer with gigabytes)."""
        async with self._http.stream(
            "POST",
            url,
            content=body,
            # Uncompressed, so the excerpt is readable from the raw bytes (nothing inflated).
            headers={**headers, "accept-encoding": "identity"},
            timeout=self._settings.notification_timeout_seconds,
            follow_redirects=False,  # a redirect could lead past the address check
        ) as resp:
            start = b""
            async for chunk in resp.aiter_raw():
                start += chunk
                if len(start) >= EXCERPT * 4:
                    break
        return resp.status_code, _excerpt(start.decode("utf-8", "replace"))

    async def _request(
        self, sub: SubscriptionRow, message: OutboxRow
    ) -> tuple[bytes, dict[str, str]]:
        if sub.format == "slack":
            return slack_body(message.id, message.payload)
        if sub.secret_path is None:  # cannot happen through the API; refuse to send unsigned
            raise UrlRefused("the subscription has no signing secret")
        now = utcnow()
        stored = await self._secrets.read(sub.secret_path)
        return standard_webhook(message.id, message.payload, signing_secrets(stored, now), now)

    async def _record(
        self,
        session: AsyncSession,
        outbox_id: str,
        subscription_id: str,
        outcome: str,
        status_code: int | None,
        excerpt: str | None,
        error: str | None,
        started: float,
    ) -> None:
        """The attempt, and the message's new state, in one transaction."""
        now = utcnow()
        row = await store.message(session, outbox_id)
        if row is None:  # the subscription was deleted meanwhile: nothing to record it for
            return
        session.add(
            AttemptRow(
                subscription_id=subscription_id,
                outbox_id=outbox_id,
                attempt=activity.info().attempt,
                at=now,
                outcome=outcome,
                status_code=status_code,
                error=error[:500] if error else None,
                response_excerpt=excerpt,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        )
        row.attempts += 1
        if outcome == "delivered":
            row.status, row.finished_at = NotificationStatus.DELIVERED.value, now
        await session.commit()

    @activity.defn(name=GIVE_UP_ACTIVITY)
    async def give_up(self, req: GiveUpRequest) -> None:
        """Mark the message failed (kept, with the reason), so the next one may go."""
        async with self._sessions() as session:
            row = await store.message(session, req.outbox_id)
            if row is not None and row.status == NotificationStatus.PENDING:
                row.status, row.reason, row.finished_at = (
                    NotificationStatus.FAILED.value,
                    req.reason[:500],
                    utcnow(),
                )
                await session.commit()


def notification_activities(
    sessions: async_sessionmaker[Any],
    http: httpx.AsyncClient,
    client: Client,  # noqa: ARG001 - the registry's hook passes it; delivery wakes nobody
    settings: Settings,
) -> list[Callable[..., Any]]:
    """The activities the worker registers for notifications."""
    acts = NotificationActivities(sessions, http, open_secret_store(settings), settings)
    return [acts.pending, acts.deliver, acts.give_up]


def _count_delivery(outcome: str) -> None:
    # Counted where the attempt is made, on the worker's metrics port: O(1), where a count
    # of the stored attempts at each scrape would grow with them (they are never pruned).
    # The runtime exports the name as is (no `_total` added).
    activity.metric_meter().create_counter(
        DELIVERIES_METRIC, "Notification delivery attempts, by outcome"
    ).add(1, {"outcome": outcome})
