"""SLOs with real processes: the health check reads a real router's counters, GET and the
metrics show the error budget, and canaries judged by `slo_burn_rate` on their own traffic
roll back when they burn it and succeed when they do not."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from api.slo_metrics import watch_slos
from cli.demo import demo_spec
from cli.load import run_load
from tests.integration.deploying import FINAL, deploy, first_version, until, versions
from tests.integration.system import System
from tests.support import wait_for

SLO = {
    "availability": {"objective": 0.99, "window": "1d"},
    "latency": {"objective": 0.9, "threshold": "300ms", "window": "1d"},
}


def canary(metric: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "canary",
        "steps": [
            {"set_weight": 20},
            {"analysis": {"metrics": [{"interval": "2s", "count": 3} | metric]}},
            {"set_weight": 100},
        ],
    }


BURN = {"name": "slo_burn_rate", "failure_condition": "result > 10"}


@pytest.fixture
async def demo(make_system: Any) -> System:
    system: System = await make_system(slo_sample_seconds=1)
    spec = demo_spec("demo", 2)
    spec["runtime"]["health_check"]["interval_seconds"] = 0.5
    spec["slo"] = SLO
    resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
    assert resp.status_code == 201, resp.text
    return system


async def health_round(system: System) -> None:
    """One scheduled-style health check over the demo, as the orchestration API starts it."""
    resp = await system.start(input={"components": ["demo"]})
    assert resp.status_code == 202, resp.text
    done = await system.until_status(resp.json()["id"], "completed", "failed")
    assert done["status"] == "completed", done


async def slo_status(system: System) -> dict[str, dict[str, Any]]:
    got = await system.http.get("/api/v1/components/demo", headers=system.auth())
    assert got.status_code == 200, got.text
    return {s["slo"]: s for s in got.json()["slo_status"] or []}


async def rounds_until(system: System, total: int) -> dict[str, dict[str, Any]]:
    """Health rounds until the readings count `total` requests (a reading is kept at most
    once a second, so a round right after the last may add nothing)."""

    async def check() -> dict[str, dict[str, Any]]:
        await health_round(system)
        return await slo_status(system)

    return await wait_for(
        check,
        lambda s: "availability" in s and s["availability"]["total"] >= total,
        what=f"readings of {total} requests",
        within=60,
    )


async def judged_under_load(
    system: System, endpoint: str, version: str, **extra: Any
) -> dict[str, Any]:
    """Deploy `version` with the slo_burn_rate canary while traffic runs, until it ends (the
    traffic stops then, however long the deployment took to start)."""
    load = asyncio.create_task(run_load(endpoint + "/", rps=40, duration=120))
    try:
        started = await deploy(system, version, canary(BURN), **extra)
        return await until(system, started["id"], *FINAL, "paused", within=90)
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load


def scrape(system: System) -> str:
    registry = CollectorRegistry()
    collector = watch_slos(system.settings, registry)
    try:
        return generate_latest(registry).decode()
    finally:
        collector.close()


async def test_budget_from_a_real_router_and_canaries_judged_by_their_burn_rate(
    demo: System,
) -> None:
    endpoint = await first_version(demo)
    await health_round(demo)  # the first reading: where the window starts
    async with httpx.AsyncClient() as http:
        for _ in range(40):
            assert (await http.get(endpoint + "/")).status_code == 200
    began = time.monotonic()
    status = await rounds_until(demo, 40)
    print(f"40 requests in the budget {time.monotonic() - began:.1f}s after they were sent")
    availability, latency = status["availability"], status["latency"]
    assert (availability["good"], availability["total"]) == (40, 40)
    assert availability["error_budget_remaining"] == 1.0
    assert availability["burn_rate_1h"] == 0.0
    assert availability["objective"] == 0.99 and availability["window_seconds"] == 86400
    assert (latency["good"], latency["total"]) == (40, 40)
    assert latency["threshold_seconds"] == 0.25 and "0.25s" in latency["note"]
    text = scrape(demo)
    labels = 'component="demo",environment="dev"'
    assert f'r2c_slo_error_budget_remaining_ratio{{{labels},slo="availability"}} 1.0' in text
    assert f'r2c_slo_objective{{{labels},slo="latency"}} 0.9' in text
    assert f"r2c_slo_latency_threshold_seconds{{{labels}}} 0.25" in text

    # A canary failing half its requests burns the budget 50 times too fast: rolled back.
    done = await judged_under_load(demo, endpoint, "v2", env={"DEMO_ERROR_RATE": "0.5"})
    assert done["state"] == "rolled_back", done["status"]
    assert "slo_burn_rate" in done["reason"] and "result > 10" in done["reason"]
    # The measurement that decided burned far over 10; an earlier window of a randomly
    # failing canary may have held no failure (seen once: [0.0, 70.6]).
    measured = [m["value"] for m in done["status"]["measurements"] if m["value"] is not None]
    assert measured and max(measured) > 10, measured
    assert await versions(endpoint) == {"v1"}
    # Its failures were spent from the component's budget too.
    spent = await rounds_until(demo, 41)
    assert spent["availability"]["error_budget_remaining"] < 1.0
    print(f"budget after the bad canary: {spent['availability']}")

    # A healthy canary burns nothing: it succeeds.
    done = await judged_under_load(demo, endpoint, "v3")
    assert done["state"] == "succeeded", done["status"]
    values = [m["value"] for m in done["status"]["measurements"] if m["value"] is not None]
    assert values and max(values) == 0.0, values
    assert await versions(endpoint) == {"v3"}
