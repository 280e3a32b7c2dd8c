"""`r2c up --with-prometheus`: Debian's Prometheus, scraping what `up` runs.

Placeholder: the prometheus work of issue 11 fills this in.
"""

from __future__ import annotations

from pathlib import Path

from cli.processes import Child
from core.settings import Settings


def local_prometheus(settings: Settings, home: Path) -> Child:
    """The (not yet started) Prometheus child: its configuration under `home`, its data in
    `home`, listening on 127.0.0.1:`settings.prometheus_port`, logging to a file."""
    raise NotImplementedError("r2c up --with-prometheus is not built yet")
