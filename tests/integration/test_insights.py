"""Delivery insights end to end on the no-op provider: deployments that succeed, roll back and
wait for an approval, then `GET /api/v1/insights` and the deployment metrics show them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from api.deployment_metrics import watch_deployments
from cli.demo import demo_spec
from cli.processes import free_port
from tests.integration.deploying import FINAL, deploy, get, until
from tests.integration.prometheus_fixture import PrometheusServer, running_prometheus
from tests.integration.system import System
from tests.support import wait_for

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

# A metric that can only error (its Prometheus does not answer): the analysis fails at once.
BROKEN = {"metrics": [{"name": "broken", "query": "up", "consecutive_error_limit": 0}]}
GATED = {"type": "rolling", "approval": {}}


async def _ended(system: System, version: str, strategy: dict[str, Any] | None = None) -> str:
    started = await deploy(system, version, strategy)
    await until(system, started["id"], *FINAL)
    return str(started["id"])


async def test_insights_and_metrics_follow_the_deployments(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(noop=True, prometheus_url=f"http://127.0.0.1:{free_port()}")
    spec = demo_spec("demo", 1)
    resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
    assert resp.status_code == 201, resp.text
    registry = CollectorRegistry()
    collector = watch_deployments(system.settings, registry)
    try:
        ok = await _ended(system, "v1")
        bad = await _ended(
            system, "v2", {"type": "canary", "steps": [{"set_weight": 50}, {"analysis": BROKEN}]}
        )
        restored = await _ended(system, "v3")
        assert [(await get(system, d))["state"] for d in (ok, bad, restored)] == [
            "succeeded",
            "rolled_back",
            "succeeded",
        ]
        waiting = await deploy(system, "v4", GATED)
        await wait_for(
            lambda: get(system, waiting["id"]),
            lambda d: (d.get("status") or {}).get("pause_reason") == "Approval",
            what="the approval gate",
        )

        resp = await system.http.get(
            "/api/v1/insights?component=demo&window=7d", headers=system.auth()
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["window"] == "7d"
        [target] = body["targets"]
        assert (target["component"], target["environment"]) == ("demo", "dev")
        overall = body["overall"]
        assert (overall["deployments"], overall["finished"], overall["succeeded"]) == (4, 3, 2)
        assert overall["failed_changes"] == 1
        assert overall["change_failure_rate"] == 1 / 3
        assert overall["deployment_frequency_per_day"] == 2 / 7
        assert overall["restores"] == 1 and overall["time_to_restore_p50_seconds"] >= 0
        assert overall["lead_time_mean_seconds"] >= 0

        def sample(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, {"component": "demo", "environment": "dev",
                                                    **labels})  # fmt: skip

        assert sample("r2c_deployments_total", strategy="rolling", outcome="succeeded") == 2.0
        assert sample("r2c_deployments_total", strategy="canary", outcome="rolled_back") == 1.0
        assert sample("r2c_rollbacks_total", reason_class="analysis") == 1.0
        assert sample("r2c_deployments_in_progress") == 1.0
        assert sample("r2c_approvals_waiting") == 1.0
        assert (sample("r2c_approval_waiting_seconds") or 0.0) >= 0.0
        assert sample("r2c_deployment_duration_seconds_count") == 3.0
        assert sample("r2c_dora_change_failure_ratio") == 1 / 3
        assert sample("r2c_dora_deployment_frequency_per_day") == 2 / 30

        resp = await system.http.post(
            f"/api/v1/deployments/{waiting['id']}/abort", json={}, headers=system.auth()
        )
        assert resp.is_success, resp.text
        await until(system, waiting["id"], *FINAL)
        assert sample("r2c_rollbacks_total", reason_class="abort") == 1.0
        assert sample("r2c_approvals_waiting") is None
        assert sample("r2c_deployments_in_progress") is None
    finally:
        registry.unregister(collector)
        collector.close()


async def test_bad_windows_and_unknown_components_are_refused_with_a_hint(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(noop=True, worker=False)
    for window in ("400d", "1w", "0h"):
        resp = await system.http.get(f"/api/v1/insights?window={window}", headers=system.auth())
        assert resp.status_code == 422, resp.text
        [field] = resp.json()["error"]["fields"]
        assert field["field"] == "query.window", field
        assert "365d" in field["message"] or "e.g. 12h" in field["message"], field
    resp = await system.http.get("/api/v1/insights?component=nope", headers=system.auth())
    assert resp.status_code == 404, resp.text
    assert "GET /api/v1/components" in resp.json()["error"]["hint"]
    empty = await system.http.get("/api/v1/insights", headers=system.auth())
    assert empty.status_code == 200, empty.text
    assert empty.json()["targets"] == [] and empty.json()["overall"]["deployments"] == 0


async def _scraped(
    prom: PrometheusServer, http: httpx.AsyncClient, promql: str
) -> list[dict[str, Any]]:
    return await wait_for(
        lambda: prom.query(http, promql), lambda result: len(result) == 1, what=promql, within=30
    )


async def test_a_real_prometheus_reads_the_deployment_metrics(
    make_system: Callable[..., Any], tmp_path: Path
) -> None:
    system: System = await make_system(noop=True)
    spec = demo_spec("demo", 1)
    resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
    assert resp.status_code == 201, resp.text
    assert (await get(system, await _ended(system, "v1")))["state"] == "succeeded"
    registry = CollectorRegistry()
    collector = watch_deployments(system.settings, registry)
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        async with (
            httpx.AsyncClient(timeout=5) as http,
            running_prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"], http) as prom,
        ):
            # Every family parses for Prometheus, the histogram included.
            for promql, value in (
                ('r2c_deployments_total{component="demo",outcome="succeeded"}', "1"),
                ('r2c_deployment_duration_seconds_count{component="demo"}', "1"),
                ('r2c_dora_change_failure_ratio{component="demo"}', "0"),
            ):
                got = await _scraped(prom, http, promql)
                assert got[0]["value"][1] == value, got
    finally:
        server.shutdown()
        server.server_close()
        registry.unregister(collector)
        collector.close()
