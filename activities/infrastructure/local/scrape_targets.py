"""Prometheus file-based service discovery for the local provider's targets.

One file per component and environment, `R2C_HOME/infra/_prometheus/<component>.<env>.json`,
in `file_sd_configs` format: a group for the router (its admin port serves `/metrics`) and one
group per version and slot for the instances the router sends requests to. Each group carries
a `role` label (`router` or `instance`) that `deploy/prometheus/prometheus.yml` uses to scrape
the two roles as two jobs (`r2c-router`, `r2c-instance`) from the same files.

Instances run the user's application: one that does not serve `/metrics` shows `up == 0` in
Prometheus, which is why no alert fires on the instances' `up`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from activities.infrastructure.local.router.table import RouteTable

ROUTER_ROLE = "router"
INSTANCE_ROLE = "instance"


def scrape_groups(
    component: str,
    environment: str,
    admin_port: int | None,
    table: RouteTable | None,
    metrics_path: str | None = "/metrics",
) -> list[dict[str, object]]:
    """The target groups of one router and its instances (by version and slot); instances
    are scraped on `metrics_path` (`__metrics_path__`), and left out when it is None (a
    component that declares no metrics)."""
    target = {"component": component, "environment": environment}
    groups: list[dict[str, object]] = []
    if admin_port is not None:
        groups.append(
            {"targets": [f"127.0.0.1:{admin_port}"], "labels": {**target, "role": ROUTER_ROLE}}
        )
    by_set: dict[tuple[str, str], list[str]] = defaultdict(list)
    backends = table.backends if table is not None and metrics_path is not None else []
    for backend in backends:
        by_set[(backend.version, backend.slot)].append(f"{backend.host}:{backend.port}")
    for (version, slot), addresses in sorted(by_set.items()):
        groups.append(
            {
                "targets": sorted(addresses),
                "labels": {
                    **target,
                    "role": INSTANCE_ROLE,
                    "slot": slot,
                    "version": version,
                    "__metrics_path__": metrics_path,
                },
            }
        )
    return groups


def render(groups: list[dict[str, object]]) -> str:
    return json.dumps(groups, indent=1)


def previous_metrics_path(path: Path) -> str | None:
    """The instances' metrics path in the file as last written, for a change made without the
    component at hand (removing a set): the default when the file lists no instance."""
    try:
        groups = json.loads(path.read_text())
        paths = [
            g["labels"].get("__metrics_path__")
            for g in groups
            if g["labels"].get("role") == INSTANCE_ROLE
        ]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return "/metrics"
    return str(paths[0]) if paths and paths[0] else "/metrics"
