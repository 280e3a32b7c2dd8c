"""Every panel of the Grafana dashboards (deploy/grafana/dashboards) asks a real Prometheus a
query that parses and returns at least one series.

Grafana does not run here. The data are real scrapes of a running `r2c up` (two scrapes of
every target it scrapes, some seconds apart: grafana_data/capture.py), laid out as 30 minutes
of samples every 15 s (counters rise from the first scrape's value to the second's, gauges
keep each scrape's value for half the time), with the `job`, `instance` and target labels
Prometheus adds and an `up` per target, then backfilled with `promtool tsdb
create-blocks-from openmetrics` into the Prometheus the test starts.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.processes import free_port
from tests.integration.grafana_data.capture import DASHBOARDS, SCRAPES
from tests.integration.prometheus_fixture import prometheus_binary
from tests.support import wait_for

STEP = 15.0
POINTS = 121  # 30 minutes
CUMULATIVE = {"counter", "histogram", "summary", "gaugehistogram"}
# Grafana's built-in variables, as a 30-minute dashboard would fill them in.
BUILTINS = {"$__rate_interval": "1m", "$__range": "30m", "$__interval": "15s"}


def load_scrapes() -> dict[str, Any]:
    scrapes: dict[str, Any] = json.loads(gzip.decompress(SCRAPES.read_bytes()))
    return scrapes


@dataclass
class Series:
    labels: dict[str, str]
    cumulative: bool
    a: float | None = None
    b: float | None = None
    values: list[float] = field(default_factory=list)

    def at(self, i: int) -> float:
        a, b = self.a, self.b
        if a is None or b is None:  # in one scrape only: that value throughout
            only = a if b is None else b
            assert only is not None
            return only
        if self.cumulative and b >= a:
            return a + (b - a) * i / (POINTS - 1)
        return a if i < POINTS // 2 else b


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _samples(text: str | None) -> list[tuple[str, dict[str, str], float, bool]]:
    """The samples of a scrape in Prometheus's text format, with the names Prometheus keeps
    (a client parser would rename a counter without `_total`, as the Temporal server's are)."""
    if text is None:
        return []
    types: dict[str, str] = {}
    found = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind
            continue
        matched = _SAMPLE.match(line)
        if line.startswith("#") or matched is None:
            continue
        name, labels, value = matched.groups()
        family = next((n for n in (name, name.rsplit("_", 1)[0]) if n in types), name)
        parsed = {
            k: re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], v)
            for k, v in _LABEL.findall(labels or "")
        }
        found.append((name, parsed, float(value), types.get(family) in CUMULATIVE))
    return found


def build_series(scrapes: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Series]:
    """Every series Prometheus would have kept from the scrapes, keyed by name and labels."""
    series: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
    for target in scrapes["targets"]:
        added = {"job": target["job"], "instance": target["instance"], **target["labels"]}
        for which in ("a", "b"):
            text = target[which]
            rows = _samples(text) + [("up", {}, 0.0 if text is None else 1.0, False)]
            for name, labels, value, cumulative in rows:
                # The routers' own component/environment labels are honoured (honor_labels).
                merged = (
                    {**added, **labels} if target["job"] == "r2c-router" else {**labels, **added}
                )
                key = (name, tuple(sorted(merged.items())))
                s = series.setdefault(key, Series(merged, cumulative))
                setattr(s, which, value)
    return series


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(series: dict[tuple[str, tuple[tuple[str, str], ...]], Series], end: float) -> str:
    lines: list[str] = []
    start = end - STEP * (POINTS - 1)
    for (name, _), s in sorted(series.items(), key=lambda kv: kv[0]):
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
        for i in range(POINTS):
            lines.append(f"{name}{{{labels}}} {s.at(i)!r} {start + STEP * i:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@dataclass
class Panel:
    board: str
    title: str
    expr: str


def panels() -> list[Panel]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append(Panel(board["title"], panel["title"], target["expr"]))
    return found


def substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in {**BUILTINS, **{f"${k}": v for k, v in variables.items()}}.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"a template variable is left in {expr!r}"
    return expr


@pytest.fixture
async def backfilled(tmp_path: Path) -> AsyncIterator[tuple[str, float]]:
    """A real Prometheus whose storage holds the scrapes; yields its URL and the data's end."""
    binary = prometheus_binary()
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    scrapes = load_scrapes()
    end = float(int(time.time()) - 60)
    source = tmp_path / "data.om"
    source.write_text(openmetrics(build_series(scrapes), end))
    argv = [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source)]
    done = await asyncio.to_thread(
        subprocess.run, [*argv, str(tmp_path / "tsdb")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": "15s"}, "scrape_configs": []}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(timeout=10) as http:

            async def ready() -> bool:
                assert proc.returncode is None, log.read_text()[-2000:]
                try:
                    return (await http.get(f"{url}/-/ready")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(ready, what="prometheus ready", within=30, every=0.2)
        yield url, end
    finally:
        proc.terminate()
        await proc.wait()


async def test_every_panel_query_returns_a_series(backfilled: tuple[str, float]) -> None:
    url, end = backfilled
    scrapes = load_scrapes()
    router = next(t for t in scrapes["targets"] if t["job"] == "r2c-router")
    variables = {"component": router["labels"]["component"],
                 "environment": router["labels"]["environment"]}  # fmt: skip
    checked, empty, failed = 0, [], []
    async with httpx.AsyncClient(timeout=30) as http:
        for panel in panels():
            query = substitute(panel.expr, variables)
            resp = await http.get(f"{url}/api/v1/query", params={"query": query, "time": end})
            body = resp.json()
            checked += 1
            if body["status"] != "success":
                failed.append(f"{panel.board} / {panel.title}: {body.get('error')}")
            elif not body["data"]["result"]:
                empty.append(f"{panel.board} / {panel.title}: {query}")
    assert failed == [], failed
    assert empty == [], "queries without a series:\n" + "\n".join(empty)
    assert checked == len(panels()) >= 50
    print(f"{checked} queries of {len({(p.board, p.title) for p in panels()})} panels checked")


async def test_every_template_variable_has_values(backfilled: tuple[str, float]) -> None:
    url, _ = backfilled
    scrapes = load_scrapes()
    router = next(t for t in scrapes["targets"] if t["job"] == "r2c-router")
    async with httpx.AsyncClient(timeout=30) as http:
        for path in sorted(DASHBOARDS.glob("*.json")):
            for var in json.loads(path.read_text())["templating"]["list"]:
                if var["type"] != "query":
                    continue
                found = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"])
                assert found, var["definition"]
                match = found.group(1).replace("$component", router["labels"]["component"])
                resp = await http.get(
                    f"{url}/api/v1/label/{found.group(2)}/values", params={"match[]": match}
                )
                assert resp.json()["data"], f"{path.name}: {var['name']} has no values"


def test_the_dashboards_are_provisioned_with_a_prometheus_datasource() -> None:
    provisioning = DASHBOARDS.parent / "provisioning"
    assert "type: prometheus" in (provisioning / "datasources" / "prometheus.yml").read_text()
    assert (
        "/var/lib/grafana/dashboards/r2c" in (provisioning / "dashboards" / "r2c.yml").read_text()
    )
    uids = [json.loads(p.read_text())["uid"] for p in sorted(DASHBOARDS.glob("*.json"))]
    assert len(uids) == len(set(uids)) == 4
