"""The container image's HEALTHCHECK (Dockerfile): exit 0 when the container's r2c process
serves, 1 when it does not.

One image runs `r2c api`, `r2c worker` and one-off CLI commands, so the check looks at what the
container runs (PID 1's command line; with `--init`, the init's): the API (and `r2c up`) must
answer `/health` on PORT, over https when R2C_TLS_CERT is set; a worker's only listener is its
Temporal SDK metrics endpoint (R2C_WORKER_METRICS_PORT), which answers while the worker's
runtime is alive; with that port at 0, or for any other command, there is nothing to ask and
the process being there is enough. Standard library only, no settings validation: a check must
be cheap and must not fail on what the process itself accepts.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

TIMEOUT_SECONDS = 3.0
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def role(argv: Sequence[str]) -> str:
    """`api`, `worker` or `other`: the first r2c subcommand in the container's command line."""
    for arg in argv:
        if arg in ("api", "up"):
            return "api"
        if arg == "worker":
            return "worker"
    return "other"


def probe_url(kind: str, env: Mapping[str, str]) -> str | None:
    """The URL that shows the process serves, or None when there is none to ask."""
    host = env.get("R2C_HOST", "127.0.0.1")
    if host in _WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if kind == "api":
        scheme = "https" if env.get("R2C_TLS_CERT") else "http"
        return f"{scheme}://{host}:{env.get('PORT', '8080')}/health"
    if kind == "worker":
        port = env.get("R2C_WORKER_METRICS_PORT", "9092")
        return None if port in ("", "0") else f"http://{host}:{port}/metrics"
    return None


def healthy(url: str) -> bool:
    # The certificate names the service, not the loopback address the check calls: the check
    # asks whether the process answers, not who it is.
    context = ssl._create_unverified_context() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS, context=context) as resp:  # noqa: S310 - a URL made above
            return 200 <= int(resp.status) < 300
    except (OSError, ValueError):
        return False


def main() -> int:
    try:
        argv = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        argv = []
    url = probe_url(role(argv), os.environ)
    return 0 if url is None or healthy(url) else 1


if __name__ == "__main__":
    sys.exit(main())
