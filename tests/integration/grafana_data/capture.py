"""Capture real scrapes of a running `r2c up --with-prometheus` for the dashboards' test.

    R2C_HOME=... METRICS_PORT=... R2C_WORKER_METRICS_PORT=... \
        python -m tests.integration.grafana_data.capture [seconds between the two scrapes]

Scrapes every target that `up`'s Prometheus scrapes (the API, the worker, the Temporal
server, and the routers and instances listed in R2C_HOME/infra/_prometheus), twice, some
seconds apart, and writes them to scrapes.json.gz beside this file, keeping only the families
the dashboards or the alert rules name (the Temporal server exports 2 MB). Run it with a
stack that has done a few deployments (a rollback, one paused for an approval, traffic on
a router, a component with SLOs), so that every family has samples.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
SCRAPES = HERE / "scrapes.json.gz"  # compressed: the Temporal server's families are large
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def dashboard_exprs() -> list[str]:
    """Every panel target's PromQL, in every dashboard."""
    exprs: list[str] = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            exprs += [t["expr"] for t in panel.get("targets", [])]
    return exprs


def used_names() -> set[str]:
    """Identifiers in the dashboards' queries and the rules (a superset of the metric names)."""
    text = "\n".join(dashboard_exprs()) + RULES.read_text()
    return set(_NAME.findall(text))


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def keep_used(text: str, names: set[str]) -> str:
    bases = {_base(n) for n in names}
    kept = []
    for line in text.splitlines():
        if line.startswith("#"):
            fields = line.split()
            if len(fields) > 2 and fields[1] in ("TYPE", "HELP") and _base(fields[2]) in bases:
                kept.append(line)
            continue
        name = _NAME.match(line)
        if name and name.group(0).endswith("_created"):
            continue  # the client's creation times: Prometheus keeps no series of them
        if name and (name.group(0) in names or _base(name.group(0)) in bases):
            kept.append(line)
    return "\n".join(kept) + "\n"


def targets(home: Path) -> list[dict[str, Any]]:
    """Each scrape target: its job, its labels and its URL, as `up`'s Prometheus sees it."""
    found = [
        {"job": "r2c-api", "labels": {}, "address": f"127.0.0.1:{os.environ['METRICS_PORT']}"},
        {
            "job": "r2c-worker",
            "labels": {},
            "address": f"127.0.0.1:{os.environ['R2C_WORKER_METRICS_PORT']}",
        },
    ]
    temporal = json.loads((home / "prometheus" / "targets" / "temporal.json").read_text())
    found += [{"job": "temporal", "labels": {}, "address": a} for a in temporal[0]["targets"]]
    for path in sorted((home / "infra" / "_prometheus").glob("*.json")):
        for group in json.loads(path.read_text()):
            labels = dict(group["labels"])
            role = labels.pop("role")
            metrics_path = labels.pop("__metrics_path__", "/metrics")
            for address in group["targets"]:
                found.append(
                    {
                        "job": f"r2c-{role}",
                        "labels": labels,
                        "address": address,
                        "path": metrics_path,
                    }  # fmt: skip
                )
    return found


def scrape(http: httpx.Client, target: dict[str, Any], names: set[str]) -> str | None:
    try:
        resp = http.get(f"http://{target['address']}{target.get('path', '/metrics')}")
        resp.raise_for_status()
    except httpx.HTTPError:
        return None  # Prometheus would record up == 0
    return keep_used(resp.text, names)


def main() -> None:
    between = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    home = Path(os.environ["R2C_HOME"])
    names = used_names()
    found = targets(home)
    with httpx.Client(timeout=10) as http:
        first = [scrape(http, t, names) for t in found]
        time.sleep(between)
        second = [scrape(http, t, names) for t in found]
    out = {
        "seconds_between": between,
        "targets": [
            {"job": t["job"], "labels": t["labels"], "instance": t["address"], "a": a, "b": b}
            for t, a, b in zip(found, first, second, strict=True)
        ],
    }
    SCRAPES.write_bytes(gzip.compress(json.dumps(out).encode(), mtime=0))
    print(f"{len(found)} targets, {len(SCRAPES.read_bytes())} bytes")


if __name__ == "__main__":
    main()
