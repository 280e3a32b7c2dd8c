"""The statistical judge end to end (issue 16): real API, worker and Temporal, a real router and
real demo versions shaped by DEMO_LATENCY_MS / DEMO_LATENCY_JITTER_MS / DEMO_ERROR_RATE, real
load, and a judge metric in the deployment's analysis. What a user sees: the deployment's
state and reason, and the judgement in its status.

The routers these tests start keep 1 s sample buckets (R2C_ROUTER_SAMPLE_SECONDS=1 in the
worker's environment, passed on to the routers it starts), so a judgement has data a second
after its window opens instead of up to 10 s later."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from activities.infrastructure.local.router.samples import BUCKET_SECONDS_ENV
from tests.integration.deploying import (
    FINAL,
    Traffic,
    deploy,
    load_until,
    register_demo,
    until,
    versions,
)
from tests.integration.judge_demo import Shape, canary, judge_metric
from tests.integration.system import System
from tests.support import wait_for

RPS = 100  # requests a second to the target while a version is judged
STABLE = Shape(latency_ms=20, jitter_ms=5)


@pytest.fixture
async def demo(system: System, monkeypatch: pytest.MonkeyPatch) -> System:
    # The worker runs in this process: the routers it starts inherit the setting.
    monkeypatch.setenv(BUCKET_SECONDS_ENV, "1")
    return await register_demo(system)


async def stable_v1(system: System) -> str:
    """v1 deployed and serving (20 ms, 5 ms jitter, no errors); its router's endpoint."""
    first = await deploy(system, "v1", env=STABLE.env())
    done = await until(system, first["id"], *FINAL)
    assert done["state"] == "succeeded", done
    return str(done["status"]["endpoint"]) + "/"


async def deployed_under_load(
    system: System,
    endpoint: str,
    strategy: dict[str, Any],
    shape: Shape,
    *,
    warm_up: float = 0.0,
) -> tuple[dict[str, Any], Traffic, float]:
    """v2 deployed with `strategy` while load runs (from `warm_up` seconds before the
    deployment until it ends or pauses); the final status, the load's traffic and how long
    the deployment took."""
    stop = asyncio.Event()
    load = asyncio.create_task(load_until(endpoint, stop, RPS))
    try:
        if warm_up:
            ready = time.time() + warm_up
            await wait_for(
                lambda: asyncio.sleep(0, time.time()),
                lambda now: now >= ready,
                within=warm_up + 5,
                every=0.2,
                what="the stable version's traffic before the deployment",
            )
        began = time.monotonic()
        started = await deploy(system, "v2", strategy, env=shape.env())
        done = await until(system, started["id"], *FINAL, "paused", within=120)
        took = time.monotonic() - began
    finally:
        stop.set()
    return done, await load, took


def judgement(done: dict[str, Any]) -> dict[str, Any]:
    """The last judgement the deployment's status shows."""
    judged = [m for m in done["status"]["measurements"] if m.get("judgement")]
    assert judged, done["status"]["measurements"]
    found: dict[str, Any] = judged[-1]["judgement"]
    return found


def metric(found: dict[str, Any], name: str) -> dict[str, Any]:
    (one,) = [m for m in found["metrics"] if m["metric"] == name]
    return dict(one)


async def test_a_canary_30_percent_slower_is_judged_fail_and_rolled_back(demo: System) -> None:
    endpoint = await stable_v1(demo)
    strategy = canary(20, judge_metric(interval="5s", count=6))
    slower = Shape(latency_ms=26, jitter_ms=5)
    done, traffic, took = await deployed_under_load(demo, endpoint, strategy, slower)

    found = judgement(done)
    latency = metric(found, "latency")
    print(
        f"+30% latency at 20%: {done['state']} in {took:.0f}s at {traffic.rps:.0f} requests/s;"
        f" judged on {latency['canary_samples']} vs {latency['baseline_samples']} requests;"
        f" {found['reason']}\n  {latency['reason']}\n  deployment's reason: {done['reason']}"
    )
    assert done["state"] == "rolled_back", (done["state"], done["reason"])
    assert "judge" in done["reason"] and "critical metric latency fails" in done["reason"]
    assert found["verdict"] == "fail" and found["score"] == 0
    assert latency["verdict"] == "fail" and latency["deviation"] == "high"
    assert latency["test"] and latency["p_value"] < 0.01
    assert latency["shift"]["relative"] > 0.1  # beyond the 10% tolerance
    assert "baseline v1 in the same window" in found["reason"]
    assert await versions(endpoint) == {"v1"}


async def test_one_percent_errors_against_none_are_judged_fail(demo: System) -> None:
    """Traffic: 100 requests a second, 20% to the canary, judged every 5 s over the window
    since the analysis began, for at most 60 s (about 1,200 canary requests against 4,800).
    Against 0 errors of four times as many requests, Fisher's exact test needs 3 canary
    errors (p about 0.2^3 = 0.008 < 0.01); with 1% errors core/judge fails 800 canary
    requests (of 4,000) in 98.7% of runs, 1,000 (of 5,000) in 99.7%, 1,200 in 99.95%."""
    endpoint = await stable_v1(demo)
    errors_only = [{"name": "errors", "kind": "errors", "critical": True}]
    strategy = canary(20, judge_metric(errors_only, interval="5s", count=12))
    failing = Shape(latency_ms=20, jitter_ms=5, error_rate=0.01)
    done, traffic, took = await deployed_under_load(demo, endpoint, strategy, failing)

    found = judgement(done)
    errors = metric(found, "errors")
    rates = errors["rates"] or {}
    print(
        f"1% errors at 20%: {done['state']} in {took:.0f}s at {traffic.rps:.0f} requests/s;"
        f" {rates.get('canary_errors')} errors of {errors['canary_samples']} canary requests"
        f" against {rates.get('baseline_errors')} of {errors['baseline_samples']};"
        f" {found['reason']}"
    )
    assert done["state"] == "rolled_back", (done["state"], done["reason"])
    assert found["verdict"] == "fail"
    assert errors["verdict"] == "fail" and errors["test"] == "Fisher's exact"
    assert errors["p_value"] < 0.01
    assert rates["baseline_errors"] == 0 and rates["canary_errors"] >= 3
    assert "critical metric errors fails" in done["reason"]
    assert await versions(endpoint) == {"v1"}


async def test_a_rolling_update_twice_as_slow_is_caught_against_the_window_before(
    demo: System,
) -> None:
    endpoint = await stable_v1(demo)
    window = 15  # seconds of v1's traffic before the deployment: the baseline
    metric_spec = judge_metric(interval="5s", count=3, baseline_window=f"{window}s")
    strategy = {"type": "rolling", "analysis": {"metrics": [metric_spec]}}
    slower = Shape(latency_ms=40, jitter_ms=5)
    done, traffic, took = await deployed_under_load(
        demo, endpoint, strategy, slower, warm_up=window + 2
    )

    found = judgement(done)
    latency = metric(found, "latency")
    print(
        f"rolling, 2x latency: {done['state']} in {took:.0f}s at {traffic.rps:.0f} requests/s;"
        f" judged on {latency['canary_samples']} requests of v2 against"
        f" {latency['baseline_samples']} of v1 before the deployment; {found['reason']}"
    )
    assert done["state"] == "rolled_back", (done["state"], done["reason"])
    assert f"baseline v1 in the {window}s before the deployment" in found["reason"]
    assert found["verdict"] == "fail"
    assert latency["verdict"] == "fail" and latency["shift"]["relative"] > 0.5
    # The whole window before the deployment was v1's, at about RPS requests a second.
    assert latency["baseline_samples"] >= RPS * (window - 2)
    assert await versions(endpoint) == {"v1"}


async def test_identical_versions_are_judged_pass_and_promoted(demo: System) -> None:
    endpoint = await stable_v1(demo)
    strategy = canary(20, judge_metric(interval="5s", count=2))
    done, traffic, took = await deployed_under_load(demo, endpoint, strategy, STABLE)

    found = judgement(done)
    latency = metric(found, "latency")
    print(
        f"identical at 20%: {done['state']} in {took:.0f}s at {traffic.rps:.0f} requests/s;"
        f" judged on {latency['canary_samples']} vs {latency['baseline_samples']} requests;"
        f" {found['reason']}"
    )
    assert done["state"] == "succeeded", (done["state"], done["reason"])
    assert found["verdict"] == "pass" and found["score"] == 100
    assert {m["verdict"] for m in found["metrics"]} == {"pass"}
    assert latency["canary_samples"] >= 10
    assert await versions(endpoint) == {"v2"}
