"""The rules of configuration entries: who may write, what a write must keep valid, and the
order that keeps secrets out of the store (Vault first, then the store and its audit event in
one transaction, so a failure anywhere leaves nothing half-written)."""

from __future__ import annotations

from secrets import token_urlsafe
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.services import audit, policies
from api.services import configuration_views as views
from core import configuration_schema
from core.db import configuration as store
from core.db.configuration import Current
from core.errors import (
    ConflictError,
    DependencyUnavailableError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from core.models.apikeys import Principal, Role
from core.models.config_rollouts import Rotation
from core.models.configuration import (
    MAX_KEYS_PER_SCOPE,
    ConfigEntry,
    ConfigVersion,
    ConfigWrite,
    EffectiveConfiguration,
    Scope,
    VersionAction,
)
from core.secrets import SecretStore


def vault_path(key: str, scope: Scope) -> str:
    """Where a secret entry's value lives in the KV mount: `config/<component>/<env>/<key>`,
    `_` standing for an absent name (no component or environment name holds `_`)."""
    return f"config/{scope.label()}/{key}"


class ConfigurationService:
    """Reads, writes and deletes configuration entries; every change is versioned, checked
    against the affected components' schemas and audited."""

    def __init__(self, session: AsyncSession, secrets: SecretStore | None) -> None:
        self.session = session
        self.secrets = secrets

    async def authorise_write(
        self, principal: Principal, key: str, scope: Scope, override: bool, rolled_out: bool = False
    ) -> None:
        """The one place a configuration write is authorised: operators and admins write, and
        the environment policies may refuse it (403: a freeze, a protected environment, a
        need for approval, a rule). A global or component-wide entry reaches every
        environment, so every policy is consulted. An admin's `override` passes freezes and
        approvals; policies record it as an audit event committed with the change. A change
        `rolled_out` at once needs no approval beforehand: its roll-outs wait for it."""
        if not principal.role.allows(Role.OPERATOR):
            raise PermissionDeniedError(
                f"changing configuration needs the operator role; key {principal.name!r} "
                f"has {principal.role.value}",
                hint="ask an admin for an operator key",
            )
        await policies.enforce_config_change(
            self.session,
            principal,
            scope.environment,
            override=override,
            key=key,
            component=scope.component,
            rolled_out=rolled_out,
        )

    async def put(
        self,
        principal: Principal,
        key: str,
        body: ConfigWrite,
        if_match: str | None,
        override: bool = False,
        *,
        rolled_out: bool = False,
        action: str = "configuration.set",
    ) -> tuple[Current, bool]:
        """Write a new version of `key` at `body.scope`; returns it and whether the entry
        was created (it did not exist, or was deleted)."""
        scope = body.scope
        if scope.component is not None:
            registered, _ = await store.component_schema(self.session, scope.component)
            if not registered:
                raise NotFoundError(
                    f"no component {scope.component!r}",
                    hint="register it first (POST /api/v1/components), or leave it out of "
                    "the scope",
                )
        await self.authorise_write(principal, key, scope, override, rolled_out)
        what = f"{key!r} at {scope.label()}"
        seen = await store.newest(self.session, key, scope)
        views.check_if_match(if_match, seen, what)
        if seen is not None and self._unchanged(seen, body):
            # Read without taking a turn: a write that changes nothing makes no version, and
            # its answer is as true as if it had been made just before any concurrent one.
            return seen, False
        revision = await store.take_revision(self.session)
        current = await store.newest(self.session, key, scope)
        views.check_if_match(if_match, current, what)
        created = current is None or current.deleted
        if created and await store.live_keys(self.session, scope) >= MAX_KEYS_PER_SCOPE:
            raise ConflictError(
                f"{scope.label()} already holds {MAX_KEYS_PER_SCOPE} keys, the most a scope may",
                hint="delete keys that are no longer used, or group values in one JSON object",
            )
        written = await store.add_version(
            self.session,
            key,
            scope,
            expected_version=current.version.version if current else 0,
            revision=revision,
            action=VersionAction.SET,
            value=None if body.secret else body.value,
            secret=body.secret,
            vault_path=vault_path(key, scope) if body.secret else None,
            description=body.description,
            actor=principal.initiator,
        )
        await self._keep_valid(
            key, scope, revision, (revision, body.value) if body.secret else None
        )
        if body.secret:
            written.version.vault_version = await self._vault().write(
                vault_path(key, scope), body.value
            )
        await audit.commit(
            self.session,
            principal,
            action,
            key,
            component=scope.component,
            environment=scope.environment,
            version=written.version.version,
            revision=revision,
            secret=body.secret or None,
        )
        return written, created

    async def rotate(
        self,
        principal: Principal,
        key: str,
        body: Rotation,
        if_match: str | None,
        override: bool = False,
    ) -> Current:
        """Give the secret entry `key` at `body.scope` a new value (given, or generated): a new
        Vault version (KV v2 keeps the old ones readable) and a new version of the entry."""
        current = await store.newest(self.session, key, body.scope)
        if current is None or current.deleted:
            raise NotFoundError(
                f"no entry {key!r} at {body.scope.label()}",
                hint='create the secret first: PUT /api/v1/configuration/{key} with "secret": true',
            )
        if not current.version.secret:
            raise InvalidInputError(
                f"{key!r} at {body.scope.label()} is not a secret; only secrets are rotated",
                hint="change a plain value with PUT /api/v1/configuration/{key}",
            )
        value = body.value
        if body.generate is not None:
            value = token_urlsafe(body.generate.length)[: body.generate.length]
        description = current.version.description if body.description is None else body.description
        write = ConfigWrite(value=value, scope=body.scope, secret=True, description=description)
        written, _ = await self.put(
            principal,
            key,
            write,
            if_match,
            override,
            rolled_out=body.roll_out is not None,
            action="configuration.rotated",
        )
        return written

    async def delete(
        self,
        principal: Principal,
        key: str,
        scope: Scope,
        if_match: str | None,
        override: bool = False,
    ) -> Current:
        """Delete `key` at `scope` softly: a new version marks it deleted, history stays."""
        await self.authorise_write(principal, key, scope, override)
        revision = await store.take_revision(self.session)
        current = await store.newest(self.session, key, scope)
        views.check_if_match(if_match, current, f"{key!r} at {scope.label()}")
        if current is None or current.deleted:
            raise NotFoundError(
                f"no entry {key!r} at {scope.label()}",
                hint="GET /api/v1/configuration?component=&environment= lists what applies",
            )
        written = await store.add_version(
            self.session,
            key,
            scope,
            expected_version=current.version.version,
            revision=revision,
            action=VersionAction.DELETED,
            value=None,
            secret=current.version.secret,
            description=current.version.description,
            actor=principal.initiator,
        )
        await self._keep_valid(key, scope, revision, None)
        await audit.commit(
            self.session,
            principal,
            "configuration.deleted",
            key,
            component=scope.component,
            environment=scope.environment,
            version=written.version.version,
            revision=revision,
        )
        return written

    async def get(self, key: str, scope: Scope, version: int | None) -> tuple[Current, bool]:
        """The value of `key` for the target (most specific scope wins), or version `version`
        of the entry at exactly `scope`; and whether that is the entry's newest version."""
        await self._registered(scope)
        if version is not None:
            found = await store.version_of(self.session, key, scope, version)
            if found.deleted:
                raise NotFoundError(
                    f"version {version} of {key!r} at {scope.label()} is its deletion",
                    hint=f"GET /api/v1/configuration/{key}/versions lists the versions",
                )
            newest = await store.newest(self.session, key, scope)
            return found, newest is not None and newest.version.id == found.version.id
        hits = await store.resolved(self.session, scope.component, scope.environment, key=key)
        if not hits:
            raise NotFoundError(
                f"{key!r} is not set for {scope.label()} nor any less specific scope",
                hint="PUT /api/v1/configuration/{key} sets it",
            )
        return hits[0], True

    async def effective(self, scope: Scope) -> EffectiveConfiguration:
        """Every key that applies to the target, resolved."""
        await self._registered(scope)
        found = await store.resolved(self.session, scope.component, scope.environment)
        revision = await store.latest_revision(self.session, scope.component, scope.environment)
        return EffectiveConfiguration(
            scope=scope, revision=revision, entries=[views.entry(c) for c in found]
        )

    async def versions(self, key: str, scope: Scope, limit: int) -> list[ConfigVersion]:
        """The newest `limit` versions of the entry at exactly `scope`, newest first."""
        entry, rows = await store.history(self.session, key, scope, limit)
        return views.versions(entry, rows, limit)

    @staticmethod
    def entry(current: Current) -> ConfigEntry:
        return views.entry(current)

    def _vault(self) -> SecretStore:
        if self.secrets is None:
            raise DependencyUnavailableError(
                "Vault is not configured, so secret entries cannot be stored; nothing was written",
                hint="set VAULT_URL and VAULT_TOKEN (or run `r2c up`, which starts OpenBao)",
            )
        return self.secrets

    @staticmethod
    def _unchanged(current: Current, body: ConfigWrite) -> bool:
        """A write that changes nothing makes no version (a re-applied file stays quiet);
        a secret is always written, as its value cannot be compared."""
        version = current.version
        return (
            not current.deleted
            and not body.secret
            and not version.secret
            and version.description == body.description
            and views.same_value(version.value, body.value)
        )

    async def _registered(self, scope: Scope) -> None:
        if scope.component is None:
            return
        registered, _ = await store.component_schema(self.session, scope.component)
        if not registered:
            raise NotFoundError(
                f"no component {scope.component!r}",
                hint="GET /api/v1/components lists the registered ones",
            )

    async def _keep_valid(
        self, key: str, scope: Scope, revision: int, written: tuple[int, Any] | None
    ) -> None:
        """Refuse (422) a change, already flushed in this transaction, that breaks the schema
        of a component in any of its views: the global one and every environment where it has
        entries or deployments. Only what the change breaks counts: a set that was already
        invalid does not block changes unrelated to its problems."""
        if scope.component is not None:
            _, schema = await store.component_schema(self.session, scope.component)
            schemas = {scope.component: schema} if schema else {}
        else:
            schemas = await store.component_schemas(self.session)
        for component, schema in schemas.items():
            environments = await store.environments_of(self.session, component)
            views_of: list[str | None]
            if scope.environment is not None:
                views_of = [scope.environment] if scope.environment in environments else []
            else:
                views_of = [None, *sorted(environments)]
            for environment in views_of:
                after = await self._problems(schema, component, environment, None, written)
                if not after:
                    continue
                # Changes take turns (take_revision), so revision - 1 is the state before.
                before = await self._problems(schema, component, environment, revision - 1)
                known = {(p.key, p.path, p.rule) for p in before}
                new = [p for p in after if (p.key, p.path, p.rule) not in known]
                if new:
                    raise self._refusal(component, environment, key, new)

    async def _problems(
        self,
        schema: dict[str, Any],
        component: str,
        environment: str | None,
        at_revision: int | None,
        written: tuple[int, Any] | None = None,
    ) -> list[configuration_schema.SchemaProblem]:
        """Problems of the view as of `at_revision` (now when None). `written` is (revision,
        value) of a secret this change writes: the one secret value at hand; the others
        are checked for presence only."""
        found = await store.resolved(self.session, component, environment, at_revision)
        values: dict[str, Any] = {}
        secrets: set[str] = set()
        hidden: set[str] = set()
        for current in found:
            name, version = current.entry.key, current.version
            values[name] = version.value
            if not version.secret:
                continue
            secrets.add(name)
            if written is not None and version.revision == written[0]:
                values[name] = written[1]
            else:
                hidden.add(name)
        return configuration_schema.check(schema, values, secrets, hidden)

    @staticmethod
    def _refusal(
        component: str,
        environment: str | None,
        key: str,
        problems: list[configuration_schema.SchemaProblem],
    ) -> InvalidInputError:
        first = problems[0]
        where = f"in {environment}" if environment else "globally"
        return InvalidInputError(
            f"this change makes the configuration of {component!r} {where} break its schema: "
            f"key {first.key or key!r}, path {first.path}, rule {first.rule}: {first.message}",
            hint=f"fix the value, or the config_schema of component {component!r}",
            component=component,
            environment=environment,
            problems=[p.as_dict() for p in problems],
        )
