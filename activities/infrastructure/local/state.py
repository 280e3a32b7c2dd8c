"""What the local provider keeps on disk for each (component, environment), under a lock.

`R2C_HOME/infra/<component>/<environment>/`: `state.json` (sets, instances, router, weights),
`routes.json` (what the router follows), `logs/` (one file per instance, one for the router).
Every path is built through `paths.child`, so no name leads outside the root, and everything is
private to the worker's user (folders 0700, files 0600).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from activities.infrastructure.local.paths import FILE_MODE, child, private_dir, private_file


class InstanceRecord(BaseModel):
    instance_id: str
    port: int
    pid: int
    ticks: int
    started_at: datetime
    healthy_once: bool = False


class SetRecord(BaseModel):
    """A slot's instances, with the overrides every instance of the set is started with and
    the configuration revision it runs (only the number: the values hold secrets)."""

    version: str
    desired: int
    key: str = ""
    config_revision: int | None = None
    env_overrides: dict[str, str] = Field(default_factory=dict)
    instances: list[InstanceRecord] = Field(default_factory=list)


class RouterRecord(BaseModel):
    port: int
    # The router's own endpoints (status, metrics), on 127.0.0.1 only. None in a state written
    # before the admin port existed: such a router is replaced by one that has it.
    admin_port: int | None = None
    pid: int = 0
    ticks: int = -1


class TargetRecord(BaseModel):
    component: str
    environment: str
    router: RouterRecord | None = None
    weights: dict[str, int] = Field(default_factory=dict)
    generation: int = 0
    sets: dict[str, SetRecord] = Field(default_factory=dict)
    next_instance: int = 1


class TargetFiles:
    """Paths and persistence of one target."""

    def __init__(self, root: Path, component: str, environment: str) -> None:
        self.root = root
        self.component = component
        self.environment = environment
        self.dir = child(root, component, environment)
        self.state_file = self.dir / "state.json"
        self.routes_file = self.dir / "routes.json"
        self.logs = self.dir / "logs"
        self._lock_file = self.dir / "lock"

    def log_file(self, name: str) -> Path:
        """The log of an instance (by its id) or of the router (`router`), created 0600."""
        path = child(private_dir(self.logs, self.root), f"{name}.log")
        private_file(path)
        return path

    def make_dir(self) -> None:
        private_dir(self.dir, self.root)

    def load(self) -> TargetRecord:
        if not self.state_file.exists():
            return TargetRecord(component=self.component, environment=self.environment)
        return TargetRecord.model_validate_json(self.state_file.read_bytes())

    def save(self, record: TargetRecord) -> None:
        self.make_dir()
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".state-")
        os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 today; said here because it matters
        with os.fdopen(fd, "w") as f:
            f.write(record.model_dump_json(indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[TargetRecord]:
        """Exclusive access across processes; yields the state, saved again on success."""
        self.make_dir()
        private_file(self._lock_file)
        with open(self._lock_file, "a+") as lock:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.02)
            record = self.load()
            yield record
            self.save(record)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
