"""Webhook sources: admins create them with a write-only secret (kept in Vault, the store
knows only its path and version), rotate and delete them; a delivery is verified against
the source's secret over the exact raw body, in constant time, before anything of it is
read, and then becomes a CloudEvent that goes through the same routing as any other.

Kinds: `github` (X-Hub-Signature-256, X-GitHub-Delivery, X-GitHub-Event) and `hmac`, any
sender that signs the body the same way: `X-Signature-256: sha256=<hex HMAC-SHA256>`, with
the delivery's id in `X-Delivery-Id`."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.services import audit
from api.services.events_http import parse_json
from core.db import events as store
from core.db.events_tables import WebhookSourceRow
from core.db.tables import utcnow
from core.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
)
from core.models.apikeys import Principal, Role
from core.models.events import (
    ActorPrincipal,
    CloudEvent,
    WebhookSecretRotation,
    WebhookSource,
    WebhookSourceCreate,
)
from core.secrets import SecretStore

log = logging.getLogger("r2c.webhooks")

SIGNATURE_HEADERS = {"github": "x-hub-signature-256", "hmac": "x-signature-256"}
DELIVERY_HEADERS = {"github": "x-github-delivery", "hmac": "x-delivery-id"}
GITHUB_EVENT_HEADER = "x-github-event"
_GITHUB_EVENT = re.compile(r"^[a-z_]{1,64}$")
_DELIVERY_ID = re.compile(r"^[!-~]{1,256}$")
_SUBJECT = re.compile(r"^[^\x00-\x1f\x7f]{1,512}$")
# Secrets by Vault, path and version: a version never changes, so a cached one is never
# stale, and a delivery costs no Vault round trip. Bounded: a few sources, a few versions each.
_SECRETS: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], bytes]] = weakref.WeakKeyDictionary()
_SECRETS_MAX = 256


def vault_path(name: str) -> str:
    return f"webhooks/{name}"


def source_principal(name: str) -> ActorPrincipal:
    """Who a delivery is recorded as: the source, which may only send events."""
    return ActorPrincipal(key_id=f"webhook:{name}", name=name, role=Role.VIEWER, kind="webhook")


def view(row: WebhookSourceRow, root_path: str = "") -> WebhookSource:
    return WebhookSource(
        name=row.name,
        kind="github" if row.kind == "github" else "hmac",
        event_type=row.event_type,
        description=row.description,
        url=f"{root_path}/api/v1/webhooks/{row.name}",
        secret_version=row.secret_version,
        created_by=row.created_by,
        created_at=row.created_at,
        rotated_at=row.rotated_at,
    )


def signature(secret: bytes, body: bytes) -> str:
    """The header value a sender puts on `body`: `sha256=<hex>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSourceService:
    """Creates, lists, rotates and deletes webhook sources; turns deliveries into events."""

    def __init__(self, session: AsyncSession, secrets: SecretStore, root_path: str = "") -> None:
        self.session = session
        self.secrets = secrets
        self.root_path = root_path

    async def all(self) -> list[WebhookSource]:
        return [view(r, self.root_path) for r in await store.sources(self.session)]

    async def get(self, name: str) -> WebhookSource:
        return view(await store.get_source(self.session, name), self.root_path)

    async def create(self, principal: Principal, body: WebhookSourceCreate) -> WebhookSource:
        """Vault first, then the row and its audit event in one transaction."""
        if await store.find_source(self.session, body.name) is not None:
            raise ConflictError(
                f"webhook source {body.name!r} exists",
                hint=f"rotate its secret: POST /api/v1/webhook-sources/{body.name}/rotate",
            )
        version = await self.secrets.write(vault_path(body.name), body.secret.get_secret_value())
        row = WebhookSourceRow(
            name=body.name,
            kind=body.kind,
            event_type=body.event_type or f"com.r2c.webhook.{body.name}",
            description=body.description,
            vault_path=vault_path(body.name),
            secret_version=version,
            created_by=principal.initiator,
            created_at=utcnow(),
        )
        self.session.add(row)
        await audit.commit(
            self.session,
            principal,
            "webhook_source.created",
            body.name,
            kind=body.kind,
            secret_version=version,
        )
        return view(row, self.root_path)

    async def rotate(
        self, principal: Principal, name: str, body: WebhookSecretRotation
    ) -> WebhookSource:
        row = await store.get_source(self.session, name)
        row.secret_version = await self.secrets.write(
            row.vault_path, body.secret.get_secret_value()
        )
        row.rotated_at = utcnow()
        await audit.commit(
            self.session,
            principal,
            "webhook_source.rotated",
            name,
            secret_version=row.secret_version,
        )
        return view(row, self.root_path)

    async def delete(self, principal: Principal, name: str) -> None:
        """Forget the source; Vault's newest version of its secret becomes null (KV v2 keeps
        the history, which an operator may destroy with `bao kv metadata delete`)."""
        row = await store.get_source(self.session, name)
        await self.secrets.write(row.vault_path, None)
        await self.session.delete(row)
        await audit.commit(self.session, principal, "webhook_source.deleted", name)

    # ------------------------------------------------------------------------- deliveries

    async def verify(self, name: str, headers: Mapping[str, str], body: bytes) -> CloudEvent:
        """The event a delivery carries, once its signature is right: 404 for an unknown
        source, 401 for a missing or wrong signature (and nothing of the body is kept)."""
        row = await store.get_source(self.session, name)
        provided = headers.get(SIGNATURE_HEADERS[row.kind])
        if not provided:
            log.warning("webhook source %s: a delivery without a signature was refused", name)
            raise AuthenticationError(
                f"the delivery has no {SIGNATURE_HEADERS[row.kind]} header",
                hint="sign the raw body with the source's secret: sha256=<hex HMAC-SHA256>",
            )
        expected = signature(await self._secret(row), body)
        # Header values arrive as latin-1 text: encoded back, they are the bytes sent.
        if not hmac.compare_digest(expected.encode(), provided.encode("latin-1", "replace")):
            log.warning("webhook source %s: a delivery with a wrong signature was refused", name)
            raise AuthenticationError(
                "the delivery's signature does not match",
                hint="sign the exact raw body with the source's current secret",
            )
        return _event(row, headers, body)

    async def _secret(self, row: WebhookSourceRow) -> bytes:
        known = _SECRETS.setdefault(self.secrets, {})
        key = (row.vault_path, row.secret_version)
        cached = known.get(key)
        if cached is None:
            value = await self.secrets.read(row.vault_path, row.secret_version)
            cached = str(value).encode()
            if len(known) >= _SECRETS_MAX:
                known.clear()
            known[key] = cached
        return cached


def _event(row: WebhookSourceRow, headers: Mapping[str, str], body: bytes) -> CloudEvent:
    delivery_header = DELIVERY_HEADERS[row.kind]
    delivery = headers.get(delivery_header, "")
    if not _DELIVERY_ID.match(delivery):
        raise InvalidInputError(
            f"the delivery needs a {delivery_header} header: its id, 1-256 printable characters",
            hint="a repeat of a delivery must carry the same id; it then acts once",
        )
    payload = parse_json(
        body,
        "the delivery's body",
        "send JSON (for GitHub: content type application/json in the hook's settings)",
    )
    event_type = row.event_type
    subject = None
    if row.kind == "github":
        github_event = headers.get(GITHUB_EVENT_HEADER, "")
        if not _GITHUB_EVENT.match(github_event):
            raise InvalidInputError(
                "the delivery needs an X-GitHub-Event header (e.g. push, release, package)",
                hint="GitHub sends it with every delivery",
            )
        event_type = f"com.github.{github_event}"
        repository = payload.get("repository") if isinstance(payload, dict) else None
        full_name = repository.get("full_name") if isinstance(repository, dict) else None
        if isinstance(full_name, str) and _SUBJECT.match(full_name):
            subject = full_name
    return CloudEvent(
        specversion="1.0",
        id=delivery,
        source=f"/webhooks/{row.name}",
        type=event_type,
        subject=subject,
        datacontenttype="application/json",
        data=payload,
    )
