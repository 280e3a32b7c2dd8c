"""The local provider's Prometheus service discovery: one file per target listing its router
and its instances (labels component, environment, slot, version), kept up to date as sets
come and go, removed with the target; and a real Prometheus on `up`'s configuration
(cli/prometheus.py) scrapes what the files list."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.infrastructure.local.provider import LocalProvider
from cli.processes import free_port
from cli.prometheus import write_config
from core.settings import Settings
from tests.integration.local_infra import demo_component, ensure
from tests.integration.prometheus_fixture import prometheus_binary
from tests.support import wait_for


def scrape_file(provider: LocalProvider, env: str = "dev") -> Path:
    return provider.root / "_prometheus" / f"demo.{env}.json"


def groups(provider: LocalProvider, env: str = "dev") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(scrape_file(provider, env).read_text())
    return found


def instance_sets(provider: LocalProvider) -> dict[tuple[str, str], int]:
    """(version, slot) -> number of instances listed."""
    return {
        (g["labels"]["version"], g["labels"]["slot"]): len(g["targets"])
        for g in groups(provider)
        if g["labels"]["role"] == "instance"
    }


async def test_the_file_follows_the_sets_and_goes_with_the_target(
    provider: LocalProvider,
) -> None:
    component = demo_component(metrics_path="/internal/metrics")
    await provider.ensure_instances(component, ensure("stable", "v1", 2))
    state = await provider.set_weights(component, "dev", {"stable": 100})
    path = scrape_file(provider)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the worker's private files
    router = next(g for g in groups(provider) if g["labels"]["role"] == "router")
    assert router["labels"] == {"component": "demo", "environment": "dev", "role": "router"}
    assert state.admin_endpoint is not None
    assert router["targets"] == [state.admin_endpoint.removeprefix("http://").rstrip("/")]
    assert instance_sets(provider) == {("v1", "stable"): 2}
    listed = next(g for g in groups(provider) if g["labels"]["role"] == "instance")
    assert listed["labels"]["__metrics_path__"] == "/internal/metrics"
    assert sorted(listed["targets"]) == sorted(
        f"127.0.0.1:{i.port}" for i in state.sets[0].instances
    )

    await provider.ensure_instances(component, ensure("canary", "v2", 1))
    await provider.set_weights(component, "dev", {"stable": 50, "canary": 50})
    assert instance_sets(provider) == {("v1", "stable"): 2, ("v2", "canary"): 1}
    await provider.set_weights(component, "dev", {"canary": 100})
    await provider.remove_set("demo", "dev", "stable")
    assert instance_sets(provider) == {("v2", "canary"): 1}
    # Removing a set is done without the component at hand: the path stays the component's.
    assert {g["labels"].get("__metrics_path__") for g in groups(provider)} == {
        None,
        "/internal/metrics",
    }
    assert not list(path.parent.glob("*.tmp"))  # written whole, then renamed

    await provider.retire("demo", "dev")
    assert not path.exists()


async def test_a_component_without_metrics_lists_only_its_router(
    provider: LocalProvider,
) -> None:
    component = demo_component(metrics_path=None)
    await provider.ensure_instances(component, ensure("stable", "v1", 1))
    await provider.set_weights(component, "dev", {"stable": 100})
    assert [g["labels"]["role"] for g in groups(provider)] == ["router"]


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[str]:
    """Prometheus on the configuration `r2c up --with-prometheus` renders for the provider's
    home (tmp_path/home, as the `provider` fixture's)."""
    home = (tmp_path / "home").resolve()
    port = free_port()
    settings = Settings(metrics_port=free_port(), worker_metrics_port=free_port())
    config = write_config(settings, home)
    proc = await asyncio.create_subprocess_exec(
        prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await proc.wait()


async def test_prometheus_scrapes_the_router_and_instances_with_their_labels(
    provider: LocalProvider, prometheus: str
) -> None:
    component = demo_component()
    await provider.ensure_instances(component, ensure("stable", "v1", 2))
    await provider.set_weights(component, "dev", {"stable": 100})

    async def targets() -> list[dict[str, Any]]:
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                resp = await http.get(f"{prometheus}/api/v1/targets")
        except httpx.HTTPError:
            return []
        active: list[dict[str, Any]] = resp.json()["data"]["activeTargets"]
        return [t for t in active if t["labels"].get("component") == "demo"]

    found = await wait_for(
        targets,
        lambda ts: (
            sorted((t["labels"]["job"], t["health"]) for t in ts)
            == [("r2c-instance", "up"), ("r2c-instance", "up"), ("r2c-router", "up")]
        ),
        what="the router and both instances scraped",
        within=30,
        every=0.3,
    )
    labels = sorted(
        (t["labels"]["job"], t["labels"]["environment"], t["labels"].get("version", "-"))
        for t in found
    )
    assert labels == [
        ("r2c-instance", "dev", "v1"),
        ("r2c-instance", "dev", "v1"),
        ("r2c-router", "dev", "-"),
    ]
    assert all("role" not in t["labels"] for t in found)
