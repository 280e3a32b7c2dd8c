"""The router process with tracing on, in front of a real upstream, exporting to a real OTLP
receiver: which requests get a span, the `traceparent` the instance sees, the bucket that
bounds spans a second, and the deployment's trace a routing table carries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.infrastructure.local.router.table import Backend, RouteTable, write_table
from tests.integration.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.integration.router_fixture import (
    Reader,
    RouterUnderTest,
    get,
    running_router,
)
from tests.support import wait_for_sync

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """The routers the test starts (they inherit this environment) export here."""
    with otlp_receiver() as running:
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", running.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        yield running


def echoed_headers(router: RouterUnderTest, extra: str = "") -> dict[str, str]:
    """The headers the instance received for one GET through the router."""
    with router.connect() as sock:
        sock.sendall(get("/echo", extra=extra))
        answer = Reader(sock).answer()
    assert answer is not None and answer.status == 200
    headers: dict[str, str] = json.loads(answer.body)["headers"]
    return headers


def router_spans(receiver: OtlpReceiver) -> list[ReceivedSpan]:
    return [s for s in receiver.snapshot() if s.name.startswith("router ")]


def test_a_sampled_request_gets_a_child_span_and_the_instance_its_traceparent(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("R2C_ROUTER_TRACE_RATIO", "0")  # only requests already sampled
    with running_router(tmp_path) as router:
        sampled = echoed_headers(router, f"traceparent: 00-{TRACE_ID}-{PARENT_ID}-01\r\n")
        unsampled_parent = f"00-{TRACE_ID}-{PARENT_ID}-00"
        unsampled = echoed_headers(router, f"traceparent: {unsampled_parent}\r\n")
        untraced = echoed_headers(router)
        spans = wait_for_sync(lambda: router_spans(receiver), what="the router's span")
    version, trace_id, span_id, flags = sampled["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id != PARENT_ID
    [span] = spans  # neither the unsampled nor the untraced request made one
    assert (span.name, span.service) == ("router GET", "r2c-router")
    assert (span.trace_id, span.parent_span_id, span.span_id) == (TRACE_ID, PARENT_ID, span_id)
    assert span.attributes["r2c.component"] == "echo"
    assert span.attributes["r2c.version"] == "v1"
    assert span.attributes["r2c.slot"] == "stable"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["server.port"] == router.upstream_port
    # What the router did not trace reaches the instance as the client sent it.
    assert unsampled["traceparent"] == unsampled_parent
    assert "traceparent" not in untraced


def test_spans_a_second_are_bounded_whatever_the_ratio(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("R2C_ROUTER_TRACE_RATIO", "1")
    monkeypatch.setenv("R2C_ROUTER_TRACES_PER_SECOND", "5")
    with running_router(tmp_path) as router, router.connect() as sock:
        began = time.monotonic()
        reader = Reader(sock)
        for _ in range(60):
            sock.sendall(get("/echo", extra=f"traceparent: 00-{TRACE_ID}-{PARENT_ID}-01\r\n"))
            answer = reader.answer()
            assert answer is not None and answer.status == 200
        took = time.monotonic() - began
        wait_for_sync(lambda: router_spans(receiver), what="the router's spans")
    # A burst of 5, then 5 a second: even a client that asks for a span every time.
    assert 5 <= len(router_spans(receiver)) <= 5 + 5 * took + 1, (len(router_spans(receiver)), took)


def test_traffic_to_a_slot_being_rolled_out_joins_the_deployments_trace(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("R2C_ROUTER_TRACE_RATIO", "1")
    deployment = f"00-{TRACE_ID}-{PARENT_ID}-01"
    with running_router(tmp_path, admin=True) as router:
        before = echoed_headers(router)  # no rollout yet: a trace of its own
        write_table(
            tmp_path / "routes.json",
            RouteTable(
                component="echo",
                environment="test",
                generation=2,
                weights={"stable": 50},  # sharing the traffic: the rollout is under way
                backends=[
                    Backend(
                        instance_id="echo-1", port=router.upstream_port, version="v1", slot="stable"
                    )
                ],  # fmt: skip
                traces={"stable": deployment},
            ),
        )
        during = wait_for_sync(
            lambda: echoed_headers(router),
            lambda headers: headers["traceparent"].split("-")[1] == TRACE_ID,
            what="the table's trace applied",
        )
        wait_for_sync(lambda: len(router_spans(receiver)) >= 2, what="the router's spans")
    assert before["traceparent"].split("-")[1] != TRACE_ID
    joined = [s for s in router_spans(receiver) if s.trace_id == TRACE_ID]
    assert joined and all(s.parent_span_id == PARENT_ID for s in joined)
    assert during["traceparent"].split("-")[2] in {s.span_id for s in joined}


def test_jaeger_endpoint_alone_sends_otlp_to_it(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The receiver stands for a Jaeger's OTLP port: given as JAEGER_ENDPOINT, spans reach it.
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.setenv("JAEGER_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("R2C_ROUTER_TRACE_RATIO", "1")
    with running_router(tmp_path) as router:
        echoed_headers(router)
        wait_for_sync(lambda: router_spans(receiver), what="the router's span via JAEGER_ENDPOINT")
