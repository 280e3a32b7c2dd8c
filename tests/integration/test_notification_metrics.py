"""Notification deliveries by outcome on the worker's metrics port: a receiver that refuses
for a while, then accepts, and a receiver nobody runs, through the real API, worker (on the
local provider), Temporal dev server and OpenBao."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from cli.processes import free_port
from tests.integration.deploying import FINAL, until
from tests.integration.notification_receiver import receiver
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System
from tests.integration.test_components_api import DEMO
from tests.integration.test_notifications import deploy, subscribe
from tests.support import wait_for

OUTAGE_SECONDS = 3.0
_SAMPLE = re.compile(r'^r2c_notification_deliveries_total\{[^}]*outcome="(\w+)"[^}]*\} (\S+)$')


async def deliveries(url: str) -> dict[str, float]:
    """outcome -> attempts, summed over the series of the worker's exposition."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(url)).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            out[match.group(1)] = out.get(match.group(1), 0.0) + float(match.group(2))
    return out


async def test_deliveries_are_counted_by_outcome(
    make_system: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    port = free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    system: System = await make_system(
        vault_url=openbao.url,
        vault_token=openbao.token,
        notification_retry_max_seconds=1,
        worker_metrics_port=port,
    )
    assert await deliveries(metrics) == {}
    resp = await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    assert resp.is_success, resp.text
    async with receiver() as rx:
        rx.refuse_until = time.monotonic() + OUTAGE_SECONDS
        events = ["deployment.started", "deployment.succeeded"]
        await subscribe(system, url=f"{rx.url}/hook", event_types=events)
        # Nothing listens there: each attempt fails to connect.
        await subscribe(system, url=f"http://127.0.0.1:{free_port()}/gone", event_types=events[:1])
        first = await deploy(system, "v1")
        assert (await until(system, first, *FINAL))["state"] == "succeeded"
        await wait_for(
            lambda: _value(len(rx.accepted("/hook"))),
            lambda n: n == 2,
            within=60,
            every=0.2,
            what="both events accepted",
        )
        refused = sum(1 for r in rx.requests if r.status == 503)
        assert refused >= 1, "the outage was never met"
        # Counted once the answer is in: just after the receiver recorded the request.
        got = await wait_for(
            lambda: deliveries(metrics),
            lambda d: d.get("delivered") == 2.0 and d.get("error", 0.0) >= 1.0,
            within=30,
            what="deliveries and a failed connection counted",
        )
        assert got["refused"] == float(refused)


async def _value(value: Any) -> Any:
    return value
