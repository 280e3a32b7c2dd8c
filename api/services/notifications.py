"""Notification subscriptions: admins create, change and delete them (each change audited in
its transaction); the signing secret is generated here, written to Vault first and shown once.
Nothing is sent from the API: the worker's delivery workflows do that."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api.gateway import Gateway
from api.services import audit
from core import notify
from core.db import notifications as store
from core.db.notifications_tables import SubscriptionRow
from core.db.tables import utcnow
from core.errors import ConflictError, DependencyUnavailableError, InvalidInputError
from core.models.apikeys import Principal
from core.models.notifications import (
    DeliveryAttempt,
    DeliveryPage,
    SecretRotated,
    Subscription,
    SubscriptionCreated,
    SubscriptionSpec,
)
from core.notification_urls import UrlRefused, check_url
from core.secrets import SecretStore

# How long a rotated-out secret still signs messages beside the new one.
ROTATION_OVERLAP = timedelta(hours=24)


def secret_path(subscription_id: str) -> str:
    """Where a subscription's signing secret lives in the KV mount."""
    return f"notifications/{subscription_id}/signing"


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def to_model(row: SubscriptionRow) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        event_types=row.event_types,
        components=row.components,
        environments=row.environments,
        format=row.format,
        description=row.description,
        enabled=row.enabled,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class NotificationService:
    """Subscriptions and their delivery record."""

    def __init__(
        self, session: AsyncSession, gateway: Gateway, secrets_store: SecretStore | None
    ) -> None:
        self.session = session
        self.gateway = gateway
        self.secrets = secrets_store

    def _check_url(self, url: str) -> None:
        allow = self.gateway.settings.notifications_private_allowed
        try:
            check_url(url, allow_private=allow)
        except UrlRefused as err:
            raise InvalidInputError(
                f"url cannot receive notifications: {err}",
                hint="give an http(s) URL of the receiver; loopback and private addresses "
                "only where R2C_NOTIFICATIONS_ALLOW_PRIVATE is true (development)",
                fields=[{"field": "body.url", "message": str(err)}],
            ) from None

    async def create(self, principal: Principal, spec: SubscriptionSpec) -> SubscriptionCreated:
        """Store a subscription; a standard_webhooks one gets a signing secret in Vault (first:
        a Vault outage is a 503 and nothing is stored)."""
        self._check_url(spec.url)
        if await store.count(self.session) >= store.MAX_SUBSCRIPTIONS:
            raise ConflictError(
                f"there are already {store.MAX_SUBSCRIPTIONS} subscriptions",
                hint="delete one you no longer need, or add event types to an existing one",
            )
        sid = f"ns_{uuid.uuid4().hex[:16]}"
        signing: str | None = None
        path: str | None = None
        if spec.format == "standard_webhooks":
            signing, path = new_signing_secret(), secret_path(sid)
            await self._vault().write(path, {"signing_secret": signing})
        now = utcnow()
        row = SubscriptionRow(
            id=sid,
            **_columns(spec),
            secret_path=path,
            next_sequence=1,
            created_by=principal.initiator,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        await audit.commit(self.session, principal, "notification.created", sid, **_audited(spec))
        # The delivery workflow runs from now on, so a message never waits for a lost wake-up.
        await notify.wake(self.gateway.client, [sid], task_queue=self.gateway.settings.task_queue)
        return SubscriptionCreated(**to_model(row).model_dump(), signing_secret=signing)

    async def rotate_secret(self, principal: Principal, subscription_id: str) -> SecretRotated:
        """A new signing secret (in Vault, then the audit event); the previous one is also
        signed with for ROTATION_OVERLAP, so receivers can switch without losing a message."""
        row = await store.get(self.session, subscription_id)
        if row.secret_path is None:
            raise InvalidInputError(
                f"{subscription_id} is a {row.format} subscription: it has no signing secret",
                hint="only standard_webhooks subscriptions are signed",
            )
        vault = self._vault()
        current = await vault.read(row.secret_path)
        signing, until = new_signing_secret(), utcnow() + ROTATION_OVERLAP
        await vault.write(
            row.secret_path,
            {
                "signing_secret": signing,
                "previous": current["signing_secret"],
                "previous_until": until.isoformat(),
            },
        )
        row.updated_at = utcnow()
        await audit.commit(self.session, principal, "notification.secret_rotated", subscription_id)
        return SecretRotated(id=subscription_id, signing_secret=signing, previous_valid_until=until)

    async def all(self) -> list[Subscription]:
        return [to_model(r) for r in await store.all_subscriptions(self.session)]

    async def get(self, subscription_id: str) -> Subscription:
        return to_model(await store.get(self.session, subscription_id))

    async def update(
        self, principal: Principal, subscription_id: str, spec: SubscriptionSpec
    ) -> Subscription:
        """Replace what the subscription wants; its format (and secret) stay."""
        row = await store.get(self.session, subscription_id)
        if spec.format != row.format:
            raise InvalidInputError(
                f"the format of {subscription_id} is {row.format}; it cannot change",
                hint="create a new subscription in the other format, then delete this one",
                fields=[{"field": "body.format", "message": "cannot change"}],
            )
        self._check_url(spec.url)
        for name, value in _columns(spec).items():
            setattr(row, name, value)
        row.updated_at = utcnow()
        await audit.commit(
            self.session, principal, "notification.updated", subscription_id, **_audited(spec)
        )
        return to_model(row)

    async def delete(self, principal: Principal, subscription_id: str) -> None:
        """The subscription and its queued messages go; its delivery workflow then ends."""
        await store.get(self.session, subscription_id)
        await store.remove(self.session, subscription_id)
        await audit.commit(self.session, principal, "notification.deleted", subscription_id)
        await notify.wake(
            self.gateway.client, [subscription_id], task_queue=self.gateway.settings.task_queue
        )

    async def deliveries(self, subscription_id: str, limit: int, offset: int) -> DeliveryPage:
        await store.get(self.session, subscription_id)
        rows, total = await store.attempts(self.session, subscription_id, limit, offset)
        items = [
            DeliveryAttempt(
                webhook_id=a.outbox_id,
                event_type=o.event_type,
                event_id=o.event_id,
                sequence=o.sequence,
                attempt=a.attempt,
                at=a.at,
                outcome=a.outcome,
                status_code=a.status_code,
                error=a.error,
                response_excerpt=a.response_excerpt,
                duration_ms=a.duration_ms,
            )
            for a, o in rows
        ]
        return DeliveryPage(items=items, total=total, limit=limit, offset=offset)

    def _vault(self) -> SecretStore:
        if self.secrets is None:
            raise DependencyUnavailableError(
                "Vault is not configured, so a signing secret cannot be stored; nothing was"
                " written",
                hint="set VAULT_URL and VAULT_TOKEN (or use `r2c up`), or use the slack format",
            )
        return self.secrets


def _columns(spec: SubscriptionSpec) -> dict[str, object]:
    return {
        "url": spec.url,
        "event_types": [e.value for e in spec.event_types],
        "components": list(spec.components),
        "environments": list(spec.environments),
        "format": spec.format,
        "description": spec.description,
        "enabled": spec.enabled,
    }


def _audited(spec: SubscriptionSpec) -> dict[str, object]:
    # The URL's host only: a Slack webhook URL carries its token in the path.
    host = spec.url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    return {"host": host, "events": [e.value for e in spec.event_types], "format": spec.format}
