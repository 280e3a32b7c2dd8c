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


class RouterLimits(BaseModel):
    """What one client may ask of the router before it is refused or disconnected.

    Every client shares the router with every other: without bounds one of them could hold
    memory (huge URLs, headers or bodies, endless pipelines) or connections (slow or idle
    clients) that the others need.
    """

    max_url_bytes: int = Field(8192, ge=64, description="longer: 414")
    max_headers: int = Field(100, ge=1, description="more header lines: 431")
    max_header_bytes: int = Field(32768, ge=256, description="request line and headers: 431")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=0, description="larger: 413")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="to send a request's line and headers; then the connection closes"
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="longest silence while a request's body is being sent"
    )
    idle_timeout_seconds: float = Field(
        60.0, gt=0, description="a keep-alive connection with nothing to do is closed after this"
    )
    max_pipelined: int = Field(
        32, ge=1, description="requests queued on one connection; beyond it: 503 and close"
    )
    trust_forwarded: bool = Field(
        False,
        description="keep the client's X-Forwarded-* (append its address) instead of replacing "
        "them: only behind a proxy of ours",
    )


class RouteTable(BaseModel):
    """Weights per slot and the backends of each slot, with a generation that only grows."""

    component: str
    environment: str
    generation: int = 0
    weights: dict[str, int] = Field(default_factory=dict, description="slot -> weight 0..100")
    backends: list[Backend] = Field(default_factory=list)
    health: HealthPolicy = Field(default_factory=HealthPolicy)
    limits: RouterLimits = Field(default_factory=RouterLimits)
    traces: dict[str, str] = Field(
        default_factory=dict,
        description="slot -> W3C traceparent of the deployment rolling out that slot's version:"
        " the router's sampled spans for requests to it (without a trace of their own) join"
        " that deployment's trace (docs/tracing.md)",
    )


def write_table(path: Path, table: RouteTable) -> None:
    """Replace the file atomically, so the router never reads half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".routes-", suffix=".json")
    try:
        os.fchmod(fd, 0o600)  # the provider's files are private to its user
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
    """What the router answers on its admin port's `/status` (the fields the provider reads)."""

    generation: int
    draining: int = 0
    in_flight: int = 0
    backends: list[BackendStatus] = Field(default_factory=list)
