"""`r2c logs`: the logs `r2c up` and the local provider keep under R2C_HOME, like
`docker compose logs` on one machine.

Sources: a process of `up` (`R2C_HOME/logs/<process>.log` and its rotated files) or a target
of the local provider (`<component>/<environment>`: its router's and its instances' logs under
`R2C_HOME/infra/<component>/<environment>/logs`, each line prefixed by its source).
`--since` keeps the lines whose time field (`time` of our JSON, `@timestamp` of ECS, a leading
ISO time otherwise) is that recent; a line without one keeps the time of the line before it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from pydantic import TypeAdapter, ValidationError

from activities.infrastructure.local.paths import child
from cli.log_files import rotated
from core.errors import InvalidInputError
from core.models.names import ComponentName, EnvironmentName

PROCESSES = ("api", "worker", "temporal", "openbao", "prometheus")
MAX_LINES = 100_000
MAX_BACKUPS_READ = 100  # R2C_LOG_BACKUPS is at most 100
# An instance's log is not rotated: only its end is read (a line cut there is dropped).
MAX_READ_BYTES = 16 * 1024 * 1024
MAX_SINCE = timedelta(days=3650)
POLL_SECONDS = 0.25

_DURATION = re.compile(r"^(\d{1,7})([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_LEADING_TIME = re.compile(r"^\[?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)")
_LOGFMT_TIME = re.compile(r"(?:^|\s)(?:time|ts)=\"?(\d{4}-\d\d-\d\dT[^\s\"]+)")
_JSON_TIME_KEYS = ("time", "@timestamp", "ts", "timestamp")
_COMPONENT: TypeAdapter[str] = TypeAdapter(ComponentName)
_ENVIRONMENT: TypeAdapter[str] = TypeAdapter(EnvironmentName)


class LogsError(Exception):
    """What `r2c logs` cannot show, and what to do instead."""


@dataclass(frozen=True)
class Source:
    """One log: its label (the prefix of its lines) and its current file."""

    label: str
    path: Path

    def files(self) -> list[Path]:
        """Its files, oldest first: the rotated ones (`.N` ... `.1`), then the current one."""
        older = [rotated(self.path, i) for i in range(MAX_BACKUPS_READ, 0, -1)]
        return [p for p in [*older, self.path] if p.is_file()]


@dataclass(order=True)
class Line:
    """A line with the time it was written (its own, or that of the line before it)."""

    at: datetime
    order: int
    label: str = field(compare=False)
    text: str = field(compare=False)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`10m`, `1h`, `2d`, `30s` (ago) or an ISO 8601 time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    value = value.strip()
    match = _DURATION.match(value)
    if match:
        span = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        if span > MAX_SINCE:
            raise LogsError(f"--since {value} is more than {MAX_SINCE.days} days")
        return now - span
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise LogsError(
            f"--since {value!r} is neither a duration nor a time: use e.g. 30s, 10m, 1h, 2d "
            "or 2026-01-31T12:00:00Z"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def line_time(text: str) -> datetime | None:
    """The time a log line states, if it states one."""
    if text.startswith("{"):
        try:
            entry: Any = json.loads(text)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            for key in _JSON_TIME_KEYS:
                value = entry.get(key)
                if isinstance(value, str):
                    return _time(value)
            return None
    match = _LEADING_TIME.match(text) or _LOGFMT_TIME.search(text[:200])
    return _time(match.group(1)) if match else None


def _time(value: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def sources(home: Path, name: str) -> list[Source]:
    """The logs `name` stands for; LogsError when it names nothing or nothing logged yet."""
    if name in PROCESSES:
        found = [Source(name, home / "logs" / f"{name}.log")]
        where = home / "logs" / f"{name}.log"
    elif "/" in name:
        logs = target_logs(home, name)
        where = logs
        # The router first, then the instances by id.
        files = sorted(logs.glob("*.log"), key=lambda p: (p.stem != "router", p.stem))
        found = [Source(p.stem, p) for p in files]
    else:
        raise LogsError(
            f"no process or target {name!r}: name one of {', '.join(PROCESSES)} or a "
            "<component>/<environment> the local provider runs (`r2c logs` lists them)"
        )
    if not any(s.files() for s in found):
        raise LogsError(f"no logs for {name} yet (looked in {where})")
    return found


def target_logs(home: Path, name: str) -> Path:
    """`R2C_HOME/infra/<component>/<environment>/logs`, from a validated name only."""
    component, _, environment = name.partition("/")
    try:
        _COMPONENT.validate_python(component)
        _ENVIRONMENT.validate_python(environment)
    except ValidationError:
        raise LogsError(
            f"{name!r} is not <component>/<environment>: both are lower-case letters, digits "
            "and -, starting with a letter"
        ) from None
    root = home.resolve() / "infra"
    try:
        return child(root, component, environment, "logs")
    except InvalidInputError as err:
        raise LogsError(str(err)) from None


def available(home: Path) -> list[str]:
    """Every name `r2c logs` has something to show for, processes first."""
    names = [p for p in PROCESSES if Source(p, home / "logs" / f"{p}.log").files()]
    infra = home / "infra"
    if infra.is_dir():
        for logs in sorted(infra.glob("*/*/logs")):
            if logs.is_dir() and any(logs.glob("*.log")):
                names.append(f"{logs.parent.parent.name}/{logs.parent.name}")
    return names


def _read_tail(path: Path) -> list[str]:
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - MAX_READ_BYTES)
        f.seek(start)
        data = f.read()
    lines = data.decode(errors="replace").splitlines()
    return lines[1:] if start and lines else lines


def collect(found: list[Source], since: datetime | None, last: int) -> list[Line]:
    """The last `last` lines of `found` since `since`, in time order across sources (each
    source's own order kept)."""
    merged: list[Line] = []
    for source in found:
        at = datetime.min.replace(tzinfo=UTC)
        for path in source.files():
            for text in _read_tail(path):
                at = line_time(text) or at
                merged.append(Line(at, len(merged), source.label, text))
    if len(found) > 1:
        merged.sort()
    if since is not None:
        merged = [line for line in merged if line.at >= since]
    return merged[-last:] if last else []


def render(line: Line, prefixed: bool, width: int) -> str:
    return f"{line.label.ljust(width)} | {line.text}" if prefixed else line.text


class _Followed:
    """A file read as it grows, reopened when `up` rotates it (a new inode at the path)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.handle: IO[bytes] | None = None
        self.inode = 0
        self.partial = b""
        if source.path.is_file():
            self._open(at_end=True)

    def _open(self, at_end: bool) -> None:
        self.handle = self.source.path.open("rb")
        self.inode = os.fstat(self.handle.fileno()).st_ino
        if at_end:
            self.handle.seek(0, os.SEEK_END)

    def poll(self) -> list[str]:
        try:
            inode = self.source.path.stat().st_ino
        except FileNotFoundError:  # between a rotation's rename and the new file
            return self._read()
        if self.handle is not None and inode == self.inode:
            return self._read()
        # Rotated (or created): the old file was renamed after its last write, so reading it
        # now gets all of its rest; then the new file from its start.
        out = self._read()
        if self.partial:
            out.append(self.partial.decode(errors="replace"))
        if self.handle is not None:
            self.handle.close()
        self.partial = b""
        self._open(at_end=False)
        return out + self._read()

    def _read(self) -> list[str]:
        if self.handle is None:
            return []
        data = self.partial + self.handle.read()
        *lines, self.partial = data.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


class Follower:
    """The new lines of `found`, from the moment it is made; with `target_dir`, the log of an
    instance that appears there later too, from its start."""

    def __init__(self, found: list[Source], target_dir: Path | None = None) -> None:
        self.target_dir = target_dir
        self.followed = {s.path: _Followed(s) for s in found}

    def _discover(self) -> None:
        if self.target_dir is None or not self.target_dir.is_dir():
            return
        for path in sorted(self.target_dir.glob("*.log")):
            if path not in self.followed:
                new = _Followed(Source(path.stem, path))
                if new.handle is not None:
                    new.handle.seek(0)  # born while we watched: all of it is new
                self.followed[path] = new

    def lines(
        self, stop: Callable[[], bool] = lambda: False, poll_seconds: float = POLL_SECONDS
    ) -> Iterator[tuple[str, str]]:
        """(label, line) as they are written, until `stop()`."""
        try:
            while not stop():
                self._discover()
                got = False
                for f in list(self.followed.values()):
                    for text in f.poll():
                        got = True
                        yield f.source.label, text
                if not got:
                    time.sleep(poll_seconds)
        finally:
            for f in self.followed.values():
                f.close()


def _say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - the command's output


def _error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr, flush=True)  # noqa: T201


def show_logs(home: Path, name: str | None, follow_: bool, since: str | None, last: int) -> int:
    """`r2c logs`: prints, returns the exit code (2 for a name or --since it cannot use)."""
    home = home.resolve()
    if name is None:
        names = available(home)
        if not names:
            _say(f"no logs yet under {home} (`r2c up` writes them to {home / 'logs'})")
            return 0
        _say("\n".join(names))
        return 0
    try:
        at = parse_since(since) if since is not None else None
        found = sources(home, name)
    except LogsError as err:
        _error(str(err))
        return 2
    prefixed = "/" in name
    width = max((len(s.label) for s in found), default=0)
    # Made before the files are read: a line written meanwhile is shown twice, not lost.
    follower = Follower(found, found[0].path.parent if prefixed else None) if follow_ else None
    for line in collect(found, at, last):
        _say(render(line, prefixed, width))
    if follower is not None:
        for label, text in follower.lines():
            _say(f"{label.ljust(width)} | {text}" if prefixed else text)
    return 0
