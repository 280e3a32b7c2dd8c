"""The routing table: what the provider writes and the router follows.

Written atomically to disk by the provider (write, then rename), read by the router whenever
the file changes, so a router restarted after a crash serves the same routes at once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field


class Backend(BaseModel):
    """One instance the router may send requests to."""

    instance_id: str
    host: str = "127.0.0.1"
    port: int
    version: str
    slot: str


class HealthPolicy(BaseModel):
    """The component's health check, applied by the router to eject failing instances."""

    path: str = "/health"
    interval_seconds: float = 2.0
    timeout_seconds: float = 1.0
    healthy_threshold: int = 1
    unhealthy_threshold: int = 2


class RouteTable(BaseModel):
    """Weights per slot and the backends of each slot, with a generation that only grows."""

    component: str
    environment: str
    generation: int = 0
    weights: dict[str, int] = Field(default_factory=dict, description="slot -> weight 0..100")
    backends: list[Backend] = Field(default_factory=list)
    health: HealthPolicy = Field(default_factory=HealthPolicy)


def write_table(path: Path, table: RouteTable) -> None:
    """Replace the file atomically, so the router never reads half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".routes-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(table.model_dump_json(indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_table(path: Path) -> RouteTable:
    return RouteTable.model_validate_json(path.read_bytes())


class BackendStatus(BaseModel):
    instance_id: str
    healthy: bool
    in_flight: int = 0


class RouterStatus(BaseModel):
    """What the router answers on `/_r2c/status` (the fields the provider reads)."""

    generation: int
    draining: int = 0
    in_flight: int = 0
    backends: list[BackendStatus] = Field(default_factory=list)
