"""`r2c audit ...`: verify the audit trail's hash chain, export it, prune it, rotate its key.

Straight on the store and the key ring, like `r2c apikey`: works while the API is down.
Exit codes: 0 done (chain intact), 1 the chain is broken or the command failed, 2 usage.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer

from cli.entry_settings import entry_settings
from cli.keys import _actor, _store
from core import audit_key_store
from core.db import audit
from core.db.tables import AuditEventRow
from core.errors import R2CError
from core.settings import Settings

audit_app = typer.Typer(
    help="The audit trail: verify its chain, export it, prune it.", no_args_is_help=True
)
EXPORT_PAGE = 1000


class Format(StrEnum):
    jsonl = "jsonl"


def _fail(err: R2CError) -> int:
    typer.echo(f"error: {err.message}" + (f" ({err.hint})" if err.hint else ""), err=True)
    return 1


def _when(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        typer.echo(f"error: --{name} is not an ISO time (e.g. 2026-11-29T06:00:00Z)", err=True)
        raise typer.Exit(2) from None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        typer.echo(f"error: --{name} is out of range", err=True)
        raise typer.Exit(2) from None


async def verify(settings: Settings, as_json: bool) -> int:
    started = time.perf_counter()
    try:
        async with _store(settings) as session:
            verdict = await audit.verify(session)
    except R2CError as err:
        return _fail(err)
    seconds = time.perf_counter() - started
    cp = verdict.checkpoint
    if as_json:
        broken = verdict.broken
        doc = {
            "intact": verdict.intact,
            "checked": verdict.checked,
            "head_id": verdict.head_id,
            "head_hash": verdict.head_hash,
            "checkpoint_through_id": cp.through_id if cp else None,
            "broken": {"id": broken.id, "problem": broken.problem.value, "message": broken.message}
            if broken
            else None,
            "seconds": round(seconds, 3),
        }
        typer.echo(json.dumps(doc))
    elif verdict.broken is not None:
        b = verdict.broken
        typer.echo(f"BROKEN at event {b.id} ({b.problem.value}): {b.message}")
        typer.echo(f"# {verdict.checked} event(s) before it verified")
    else:
        start = f"checkpoint through event {cp.through_id}" if cp else "the first event"
        typer.echo(f"intact: {verdict.checked} event(s) verified from {start} in {seconds:.2f}s")
        if verdict.head_id is not None:
            typer.echo(f"head: event {verdict.head_id} {verdict.head_hash}")
    return 0 if verdict.intact else 1


def _line(row: AuditEventRow) -> str:
    doc = {
        "id": row.id,
        "at": row.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "detail": row.detail,
        "request_id": row.request_id,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
        "mac": row.mac,
        "key_id": row.key_id,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


async def export(settings: Settings, where: audit.EventFilter) -> int:
    """Matching events, oldest first, one JSON object a line on stdout."""
    try:
        async with _store(settings) as session:
            after = 0
            while True:
                rows = await audit.find(
                    session, where, limit=EXPORT_PAGE, after_id=after, oldest_first=True
                )
                sys.stdout.write("".join(_line(r) + "\n" for r in rows))
                if len(rows) < EXPORT_PAGE:
                    break
                after = rows[-1].id
                session.expunge_all()
    except R2CError as err:
        return _fail(err)
    sys.stdout.flush()
    return 0


async def prune(settings: Settings, days: int) -> int:
    if days == 0:
        typer.echo("retention is 0 days (R2C_AUDIT_RETENTION_DAYS): every event is kept")
        return 0
    try:
        async with _store(settings) as session:
            pruned = await audit.prune(session, datetime.now(UTC) - timedelta(days=days))
    except R2CError as err:
        return _fail(err)
    cp = pruned.checkpoint
    typer.echo(f"pruned {pruned.events} event(s) older than {days} day(s)")
    if cp is not None:
        typer.echo(f"# the chain goes on from the signed checkpoint through event {cp.through_id}")
    return 0


async def rotate_key(settings: Settings) -> int:
    try:
        ring = await asyncio.to_thread(audit_key_store.rotate, settings)
        async with _store(settings) as session:
            detail = {"keys": len(ring.keys)}
            await audit.record(
                session,
                actor=_actor(),
                action="audit_key.rotated",
                target=ring.current_id,
                detail=detail,
            )
            await session.commit()
    except R2CError as err:
        return _fail(err)
    typer.echo(f"new current audit key {ring.current_id}; {len(ring.keys) - 1} older key(s) kept")
    return 0


@audit_app.command("verify")
def verify_command(
    as_json: Annotated[bool, typer.Option("--json", help="print the verdict as JSON")] = False,
) -> None:
    """Walk the chain and name its first broken link; exit 1 if there is one."""
    raise typer.Exit(asyncio.run(verify(entry_settings(), as_json)))


@audit_app.command("export")
def export_command(
    fmt: Annotated[Format, typer.Option("--format", help="jsonl: one event a line")] = Format.jsonl,
    since: Annotated[str | None, typer.Option(help="events at or after this ISO time")] = None,
    until: Annotated[str | None, typer.Option(help="events before this ISO time")] = None,
    actor: Annotated[str | None, typer.Option(help="only this actor")] = None,
    action: Annotated[str | None, typer.Option(help="only this action")] = None,
    target: Annotated[str | None, typer.Option(help="only this target")] = None,
) -> None:
    """Print events oldest first, with their hashes and MACs, for a SIEM."""
    assert fmt is Format.jsonl  # the only format so far
    where = audit.EventFilter(_when(since, "since"), _when(until, "until"), actor, action, target)
    raise typer.Exit(asyncio.run(export(entry_settings(), where)))


@audit_app.command("prune")
def prune_command(
    older_than_days: Annotated[
        int | None,
        typer.Option(min=0, max=36_500, help="default: R2C_AUDIT_RETENTION_DAYS (0 keeps all)"),
    ] = None,
) -> None:
    """Remove old events, leaving a signed checkpoint the chain goes on from."""
    settings = entry_settings()
    days = settings.audit_retention_days if older_than_days is None else older_than_days
    raise typer.Exit(asyncio.run(prune(settings, days)))


@audit_app.command("rotate-key")
def rotate_key_command() -> None:
    """Sign new events with a fresh HMAC key; older keys stay to verify older events."""
    raise typer.Exit(asyncio.run(rotate_key(entry_settings())))
