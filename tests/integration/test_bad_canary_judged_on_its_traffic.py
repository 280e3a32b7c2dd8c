"""The core promise, with real processes and real traffic: a bad canary whose first
measurement comes before its traffic rolls back by itself instead of pausing for a human."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.canaries import BAD_CANARY
from tests.integration.deploying import (
    FINAL,
    deploy,
    first_version,
    load_until,
    register_demo,
    until,
    versions,
)
from tests.integration.system import System


@pytest.fixture
async def demo(system: System) -> System:
    return await register_demo(system)


async def test_a_half_failing_canary_without_initial_delay_rolls_back_on_its_own(
    demo: System,
) -> None:
    endpoint = await first_version(demo)
    ended = asyncio.Event()
    load = asyncio.create_task(load_until(endpoint + "/", ended, rps=40))
    began = time.monotonic()
    try:
        started = await deploy(demo, "v2", BAD_CANARY, env={"DEMO_ERROR_RATE": "0.5"})
        done = await until(demo, started["id"], *FINAL, "paused", within=60)
    finally:
        ended.set()
    took = time.monotonic() - began
    print(f"50%-failing canary rolled back {took:.1f}s after it was accepted")
    assert done["state"] == "rolled_back", done["status"]
    assert (
        "error_rate" in done["reason"]
        and "failure condition `result > 0.05` holds" in (done["reason"])
    )
    assert await versions(endpoint) == {"v1"}
    traffic = await load
    requests, failed = traffic.requests, traffic.failed
    # Before the fix it sat paused at 20%, failing 151 requests in the first 40 s.
    print(f"requests failed while it ran: {failed} of {requests}")
    assert requests > 0 and failed < 40
