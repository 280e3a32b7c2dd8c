"""`r2c watch release ID` and `r2c describe release ID`: a release's waves, each component's
deployment with its state and current weights, and the outcome.

The release's state comes from its event stream (GET /api/v1/releases/{id}/events, as
cli/watch.py follows a deployment's); the weights of the deployments that are running are read
every 2 s while it runs (a release's state changes when a deployment starts or ends, not when
its canary moves). Exit codes as for a deployment: 0 succeeded, 3 rolled back, 5 failed, 1 the
API refused or was away, 130 detached.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cli.api_client import ApiClient, ApiError
from cli.render import FINAL, exit_code, version_weights, weights_text
from cli.watch import follow

WEIGHTS_EVERY_SECONDS = 2.0
COLOR = {"succeeded": "green", "rolled_back": "yellow", "aborted": "red", "failed": "red"}


def _status(body: dict[str, Any]) -> dict[str, Any]:
    status = body.get("status")
    return status if isinstance(status, dict) else {}


def _components(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The components in wave order (then by name), each with its progress."""
    st = _status(body)
    progress = st.get("components") or {}
    names = list(body.get("components") or {})
    rows = []
    for name in names:
        p = progress.get(name) or {}
        rows.append({"component": name, "version": body["components"][name], **p})
    return sorted(rows, key=lambda r: (int(r.get("wave") or 0), r["component"]))


def current_wave(body: dict[str, Any]) -> int:
    started = [int(r.get("wave") or 0) for r in _components(body) if r.get("state")]
    return max(started, default=0)


def head_line(body: dict[str, Any]) -> str:
    st = _status(body)
    state = str(body.get("state"))
    parts = [f"{body.get('id')} {state}", str(body.get("environment"))]
    waves = st.get("waves") or []
    if waves:
        parts.append(f"wave {current_wave(body) + 1}/{len(waves)}")
    if state in FINAL and body.get("reason"):
        parts.append(f"- {body['reason']}")
    return " | ".join(parts)


def component_line(row: dict[str, Any], weights: dict[str, str]) -> str:
    line = f"  wave {int(row.get('wave') or 0) + 1} {row['component']} {row['version']}: "
    line += str(row.get("state") or "waiting")
    if row.get("deployment_id"):
        line += f" ({row['deployment_id']})"
    if row.get("deployment_id") in weights:
        line += f" | weights {weights[row['deployment_id']]}"
    if row.get("reason") and row.get("state") in FINAL:
        line += f" - {row['reason']}"
    if row.get("rollback_state"):
        line += f" | rolled back by the release: {row['rollback_state']}"
    return line


@dataclass
class ReleaseLines:
    """Plain lines for what changed: the release's line, and each component's."""

    last: dict[str, str] = field(default_factory=dict)

    def feed(self, body: dict[str, Any], weights: dict[str, str]) -> list[str]:
        """Components that changed first, then the release's line when it changed: the
        outcome is the last line."""
        lines = []
        changed = [(r["component"], component_line(r, weights))
                   for r in _components(body) if r.get("state")]  # fmt: skip
        for key, line in [*changed, ("", head_line(body))]:
            if self.last.get(key) != line:
                self.last[key] = line
                lines.append(line)
        return lines


def release_view(body: dict[str, Any], weights: dict[str, str]) -> RenderableType:
    state = str(body.get("state"))
    head = Text(f"release {body.get('id')} → {body.get('environment')}  ")
    head.append(state.upper(), style=f"bold {COLOR.get(state, 'cyan')}")
    waves = _status(body).get("waves") or []
    if waves:
        head.append(f"  wave {current_wave(body) + 1} of {len(waves)}")
    table = Table("wave", "component", "version", "deployment", "state", "weights", box=None)
    for row in _components(body):
        row_state = str(row.get("state") or "waiting")
        if row.get("rollback_state"):
            row_state += f", rolled back ({row['rollback_state']})"
        style = COLOR.get(str(row.get("state")), "cyan" if row.get("state") else "dim")
        table.add_row(
            str(int(row.get("wave") or 0) + 1),
            row["component"],
            str(row["version"]),
            str(row.get("deployment_id") or "-"),
            Text(row_state, style=style),
            weights.get(str(row.get("deployment_id")), ""),
        )
    parts: list[RenderableType] = [head, table]
    if state in FINAL:
        outcome = f"outcome: {state}" + (f" - {body.get('reason')}" if body.get("reason") else "")
        parts.append(Text(outcome, style=f"bold {COLOR.get(state, 'white')}"))
    return Group(*parts)


def _weights(api: ApiClient, body: dict[str, Any], known: dict[str, str], every: bool) -> None:
    """The weights of the running deployments (`every`: of all, once at the end)."""
    for row in _components(body):
        ident = row.get("deployment_id")
        if not ident or (not every and row.get("state") in FINAL and ident in known):
            continue
        try:
            dep = api.request("GET", f"/api/v1/deployments/{quote(str(ident), safe='')}")
        except ApiError:
            continue  # not readable (yet): the state line says enough
        st = dep.get("status") if isinstance(dep, dict) else None
        if isinstance(st, dict) and st.get("weights"):
            known[str(ident)] = weights_text(version_weights(st))


_END = object()


def _updates(api: ApiClient, release_id: str) -> Iterator[dict[str, Any] | None]:
    """The release's bodies from its stream, with None every WEIGHTS_EVERY_SECONDS between
    them (time to read the weights again); ends after the final body."""
    inbox: queue.Queue[Any] = queue.Queue()

    def pump() -> None:
        try:
            for body in follow(api, release_id, kind="releases"):
                inbox.put(body)
        except Exception as err:  # handed to the reader, raised there
            inbox.put(err)
        inbox.put(_END)

    threading.Thread(target=pump, daemon=True, name=f"watch-{release_id}").start()
    while True:
        try:
            item = inbox.get(timeout=WEIGHTS_EVERY_SECONDS)
        except queue.Empty:
            yield None
            continue
        if item is _END:
            return
        if isinstance(item, Exception):
            raise item
        yield item


def watch_release(api: ApiClient, release_id: str, *, tty: bool) -> int:
    """Follow the release to its end; its final state is the exit code."""
    body: dict[str, Any] = {"id": release_id, "state": "pending"}
    weights: dict[str, str] = {}
    lines = ReleaseLines()
    live: Live | None = None
    if tty:
        live = Live(
            get_renderable=lambda: release_view(body, weights),
            console=Console(),
            refresh_per_second=2,
        )
        live.start()
    try:
        for update in _updates(api, release_id):
            if update is not None:
                body = update
            final = str(body.get("state")) in FINAL
            _weights(api, body, weights, every=final)
            if live is None:
                for line in lines.feed(body, weights):
                    print(line, flush=True)
    finally:
        if live is not None:
            live.stop()
    state = str(body.get("state"))
    return exit_code(state) if state in FINAL else 1


def describe_release_text(body: dict[str, Any]) -> str:
    st = _status(body)
    lines = [
        f"id:          {body['id']}",
        f"environment: {body['environment']}",
        f"state:       {body['state']}",
        f"started:     {str(body.get('created_at', ''))[:19].replace('T', ' ')}"
        f" by {body.get('initiator')}",
    ]
    if body.get("finished_at"):
        lines.append(f"finished:    {str(body['finished_at'])[:19].replace('T', ' ')}")
    if body.get("reason"):
        lines.append(f"reason:      {body['reason']}")
    if body.get("failed_component"):
        lines.append(f"caused by:   {body['failed_component']}")
    waves = st.get("waves") or []
    for i, wave in enumerate(waves, 1):
        lines.append(f"wave {i}:      {', '.join(wave)}")
    lines.append("components:")
    lines += [component_line(row, {}) for row in _components(body)]
    if st.get("notices"):
        lines.append("notices:")
        lines += [f"  {n}" for n in st["notices"]]
    links = body.get("links") or {}
    if links.get("temporal_ui"):
        lines.append(f"temporal:    {links['temporal_ui']}")
    return "\n".join(lines)
