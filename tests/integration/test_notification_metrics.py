"""Notification deliveries by outcome on the API's /metrics: a receiver that refuses for a
while, then accepts, and a receiver nobody runs, through the real API, worker, Temporal dev
server and OpenBao."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from api.deployment_metrics import watch_deployments
from cli.processes import free_port
from tests.integration.deploying import FINAL, until
from tests.integration.notification_receiver import receiver
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System
from tests.integration.test_components_api import DEMO
from tests.integration.test_notifications import deploy, subscribe
from tests.support import wait_for

OUTAGE_SECONDS = 3.0


async def test_deliveries_are_counted_by_outcome(
    make_system: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    system: System = await make_system(
        noop=True,
        vault_url=openbao.url,
        vault_token=openbao.token,
        notification_retry_max_seconds=1,
    )
    registry = CollectorRegistry()
    collector = watch_deployments(system.settings, registry)

    def deliveries(outcome: str) -> float | None:
        return registry.get_sample_value("r2c_notification_deliveries_total", {"outcome": outcome})

    try:
        # Before any delivery, every outcome is there at 0 (an alert on errors has a series).
        assert [deliveries(o) for o in ("delivered", "refused", "error")] == [0.0, 0.0, 0.0]
        resp = await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
        assert resp.is_success, resp.text
        async with receiver() as rx:
            rx.refuse_until = time.monotonic() + OUTAGE_SECONDS
            events = ["deployment.started", "deployment.succeeded"]
            await subscribe(system, url=f"{rx.url}/hook", event_types=events)
            # Nothing listens there: each attempt fails to connect.
            await subscribe(
                system, url=f"http://127.0.0.1:{free_port()}/gone", event_types=events[:1]
            )
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
            # The worker records an attempt once it has the answer: just after the receiver.
            await wait_for(
                lambda: _value(deliveries("delivered")),
                lambda n: n == 2.0,
                what="both deliveries recorded",
            )
            assert deliveries("refused") == float(refused)
            errors = await wait_for(
                lambda: _value(deliveries("error") or 0.0),
                lambda n: n >= 1,
                within=30,
                what="a failed connection counted",
            )
            assert errors >= 1
    finally:
        registry.unregister(collector)
        collector.close()


async def _value(value: Any) -> Any:
    return value
