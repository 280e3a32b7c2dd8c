"""End to end: `r2c up` with `OTEL_EXPORTER_OTLP_ENDPOINT` set exports the API's, the
worker's and the router's spans to a real OTLP/HTTP receiver, each process under its own
service name, and a deployment's request and its activities share one trace across the API
and worker processes."""

from __future__ import annotations

import signal

import httpx

from tests.e2e.up_stack import UpStack
from tests.integration.otlp_receiver import ReceivedSpan, otlp_receiver
from tests.support import wait_for_sync


def test_up_exports_one_trace_per_deployment_across_its_processes(up_stack: UpStack) -> None:
    with otlp_receiver() as receiver:
        up_stack.env.pop("OTEL_SERVICE_NAME", None)
        up_stack.env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="200",
            R2C_ROUTER_TRACE_RATIO="1",
        )
        run = up_stack.start()
        up_stack.register_demo()
        headers = up_stack.headers
        body = {"component": "demo", "environment": "dev", "version": "v1"}
        created = httpx.post(
            f"{up_stack.base_url}/api/v1/deployments", json=body, headers=headers, timeout=10
        )
        assert created.status_code == 202, created.text
        url = f"{up_stack.base_url}/api/v1/deployments/{created.json()['id']}"
        done = wait_for_sync(
            lambda: httpx.get(url, headers=headers, timeout=10).json(),
            lambda d: d["state"] in ("succeeded", "rolled_back", "aborted", "failed"),
            what="the deployment ended",
            within=90,
            every=0.5,
        )
        assert done["state"] == "succeeded", done
        endpoint = done["status"]["endpoint"]
        assert httpx.get(endpoint + "/", timeout=5).status_code == 200

        def post_span(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
            return next(
                (s for s in spans if s.name == "POST /api/v1/deployments"),
                None,
            )

        def trace_complete(spans: list[ReceivedSpan]) -> bool:
            post = post_span(spans)
            if post is None:
                return False
            names = {(s.service, s.name) for s in spans if s.trace_id == post.trace_id}
            return {
                ("r2c-api", "POST /api/v1/deployments"),
                ("r2c-api", "StartWorkflow:deployment"),
                ("r2c-worker", "RunWorkflow:deployment"),
                ("r2c-worker", "RunActivity:ensure-instances"),
                ("r2c-worker", "RunActivity:record-deployment"),
            } <= names

        wait_for_sync(
            receiver.snapshot,
            trace_complete,
            what="the deployment's trace from the API and the worker",
            within=30,
        )
        # The router, started by the worker, traces too (as r2c-router), with the worker's
        # settings: the request just sent made a span.
        wait_for_sync(
            lambda: [s for s in receiver.snapshot() if s.service == "r2c-router"],
            what="a span of the router",
            within=30,
        )
        assert run.stop(signal.SIGTERM) == 0
