"""How stored configuration is shown: values (a secret only as `<secret vN>`), ETags, and the
diff of each version against the one before it."""

from __future__ import annotations

import json
from typing import Any

from core.configuration_diff import ABSENT, secret_diff, value_diff
from core.db.configuration import Current, scope_of
from core.db.configuration_tables import ConfigEntryRow, ConfigVersionRow
from core.errors import PreconditionFailedError
from core.models.configuration import (
    ConfigEntry,
    ConfigVersion,
    DiffLine,
    VersionAction,
    secret_placeholder,
)


def same_value(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`, nor `1.0` the same as `1`."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def etag(current: Current) -> str:
    """A strong ETag naming the entry (at its scope) and its version."""
    return f'"{current.entry.id}.{current.version.version}"'


def check_if_match(if_match: str | None, current: Current | None, what: str) -> None:
    """Refuse with 412 unless `If-Match` (when sent) names the entry's newest version; `*`
    asks only that the entry exists."""
    if if_match is None:
        return
    tags = {t.strip() for t in if_match.split(",") if t.strip()}
    live = current is not None and not current.deleted
    if "*" in tags and live:
        return
    if current is not None and etag(current) in tags:
        return
    now = "does not exist" if current is None else f"is at version {current.version.version}"
    raise PreconditionFailedError(
        f"If-Match {if_match[:100]!r} does not match: {what} {now}",
        hint="GET it again, check the change still makes sense, and send its ETag in If-Match",
    )


def entry(current: Current) -> ConfigEntry:
    """The entry as every caller sees it: a secret's value is never shown."""
    version = current.version
    return ConfigEntry(
        key=current.entry.key,
        value=secret_placeholder(version.version) if version.secret else version.value,
        secret=version.secret,
        description=version.description,
        source=current.scope,
        version=version.version,
        revision=version.revision,
        updated_at=version.at,
        updated_by=version.actor,
    )


def _diff(row: ConfigVersionRow, before: ConfigVersionRow | None) -> list[DiffLine]:
    had = before is not None and before.action == VersionAction.SET
    has = row.action == VersionAction.SET
    if row.secret or (before is not None and before.secret):
        return secret_diff(had, has)
    return value_diff(
        before.value if had and before is not None else ABSENT, row.value if has else ABSENT
    )


def versions(
    entry_row: ConfigEntryRow, rows: list[ConfigVersionRow], limit: int
) -> list[ConfigVersion]:
    """`rows` newest first (one more than `limit` when older ones exist) as versions."""
    scope = scope_of(entry_row)
    shown = []
    for i, row in enumerate(rows[:limit]):
        before = rows[i + 1] if i + 1 < len(rows) else None
        shown.append(
            ConfigVersion(
                key=entry_row.key,
                scope=scope,
                version=row.version,
                revision=row.revision,
                action=VersionAction(row.action),
                secret=row.secret,
                description=row.description,
                at=row.at,
                by=row.actor,
                diff=_diff(row, before),
            )
        )
    return shown
