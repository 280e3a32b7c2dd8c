"""End to end: `r2c up --with-prometheus` runs Debian's Prometheus on a configuration it
renders under R2C_HOME; it scrapes the API, the worker, the embedded Temporal server and,
once a deployment made them, the router and the instances (found through the files the worker
keeps), and a deployment's analysis asks it a PromQL query."""

from __future__ import annotations

import signal
from typing import Any

import httpx

from cli.processes import free_port
from tests.e2e.up_stack import UpStack
from tests.support import wait_for_sync


def _targets(prometheus: str) -> list[dict[str, Any]]:
    try:
        resp = httpx.get(f"{prometheus}/api/v1/targets", timeout=5)
    except httpx.HTTPError:
        return []
    active: list[dict[str, Any]] = resp.json()["data"]["activeTargets"]
    return active


def _up_jobs(targets: list[dict[str, Any]]) -> set[str]:
    return {t["labels"]["job"] for t in targets if t["health"] == "up"}


def _deploy(stack: UpStack, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    created = httpx.post(
        f"{stack.base_url}/api/v1/deployments", json=body, headers=headers, timeout=10
    )
    assert created.status_code == 202, created.text
    url = f"{stack.base_url}/api/v1/deployments/{created.json()['id']}"
    ended = {"succeeded", "rolled_back", "aborted", "failed"}
    done: dict[str, Any] = wait_for_sync(
        lambda: httpx.get(url, headers=headers, timeout=10).json(),
        lambda d: d["state"] in ended,
        what=f"deployment of {body['version']} ended",
        within=90,
        every=0.5,
    )
    return done


def test_up_with_prometheus_scrapes_everything_and_the_analysis_queries_it(
    up_stack: UpStack,
) -> None:
    port = free_port()
    up_stack.env.update(R2C_WITH_PROMETHEUS="1", R2C_PROMETHEUS_PORT=str(port))
    prometheus = f"http://127.0.0.1:{port}"
    run = up_stack.start()
    assert f"Prometheus     {prometheus}" in run.output()
    config = (up_stack.home / "prometheus" / "prometheus.yml").read_text()
    assert str(up_stack.home / "infra" / "_prometheus" / "*.json") in config
    assert (up_stack.home / "prometheus" / "alerts.yml").is_file()

    wait_for_sync(
        lambda: _up_jobs(_targets(prometheus)),
        lambda jobs: {"r2c-api", "r2c-worker", "temporal"} <= jobs,
        what="Prometheus scraping the API, the worker and Temporal",
        within=60,
        every=0.5,
    )
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {"r2c-deployments", "r2c-processes"} <= {g["name"] for g in rules}

    up_stack.register_demo()
    headers = up_stack.headers
    first = _deploy(up_stack, headers, {"component": "demo", "environment": "dev", "version": "v1"})
    assert first["state"] == "succeeded", first

    def demo_targets() -> list[dict[str, Any]]:
        return [t for t in _targets(prometheus) if t["labels"].get("component") == "demo"]

    found = wait_for_sync(
        demo_targets,
        lambda ts: (
            {(t["labels"]["job"], t["health"]) for t in ts}
            >= {("r2c-router", "up"), ("r2c-instance", "up")}
        ),
        what="Prometheus scraping demo's router and instances",
        within=60,
        every=0.5,
    )
    router = next(t for t in found if t["labels"]["job"] == "r2c-router")
    assert router["labels"]["environment"] == "dev"
    assert "role" not in router["labels"]
    instances = [t for t in found if t["labels"]["job"] == "r2c-instance"]
    assert len(instances) == 2  # the demo's two replicas
    assert {(t["labels"]["version"], t["labels"]["environment"]) for t in instances} == {
        ("v1", "dev")
    }
    assert all(t["labels"]["slot"] in ("blue", "green") for t in instances)

    # PROMETHEUS_URL was handed to the worker: a metric with a query is measured on it.
    query = 'max(up{job="r2c-router",component="{{component}}",environment="{{environment}}"})'
    second = _deploy(
        up_stack,
        headers,
        {
            "component": "demo",
            "environment": "dev",
            "version": "v2",
            "strategy": {
                "type": "canary",
                "steps": [
                    {"set_weight": 50},
                    {
                        "analysis": {
                            "metrics": [
                                {
                                    "name": "router_up",
                                    "query": query,
                                    "success_condition": "result == 1",
                                    "count": 2,
                                    "interval": "1s",
                                }  # fmt: skip
                            ]
                        }
                    },
                    {"set_weight": 100},
                ],
            },
        },
    )
    assert second["state"] == "succeeded", second
    wait_for_sync(
        demo_targets,
        lambda ts: (
            {t["labels"].get("version") for t in ts if t["labels"]["job"] == "r2c-instance"}
            == {"v2"}
        ),
        what="the v1 instances gone from Prometheus's targets",
        within=30,
        every=0.5,
    )
    # The instances and the router outlive `up` by design (test_up_instances.py).
    assert run.stop(signal.SIGTERM) == 0
