"""Tracing decisions that need no process: Jaeger's endpoint, `traceparent` parsing, the
router's sampling and bucket, and which slots of a routing table join a deployment's trace."""

from __future__ import annotations

import logging

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from activities.infrastructure.local.router.request import Request
from activities.infrastructure.local.router.table import Backend, RouteTable
from activities.infrastructure.local.router.tracing import (
    RouterTraceConfig,
    RouterTracing,
    TokenBucket,
)
from activities.infrastructure.local.routers import rollout_traces
from core.tracing import (
    exporter_endpoint,
    format_traceparent,
    jaeger_otlp_endpoint,
    parse_traceparent,
    redact_url,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE_ID}-{SPAN_ID}-01"


@pytest.mark.parametrize(
    ("given", "mapped"),
    [
        ("http://jaeger:14268/api/traces", "http://jaeger:4318/v1/traces"),
        ("http://jaeger:4318", "http://jaeger:4318/v1/traces"),
        ("http://jaeger", "http://jaeger:4318/v1/traces"),
        ("https://jaeger.example:4318/v1/traces", "https://jaeger.example:4318/v1/traces"),
        ("http://[::1]:14268/api/traces", "http://[::1]:4318/v1/traces"),
    ],
)
def test_jaeger_endpoint_maps_to_its_otlp_receiver(given: str, mapped: str) -> None:
    assert jaeger_otlp_endpoint(given) == mapped


def test_the_thrift_endpoint_is_mapped_with_a_warning_that_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        jaeger_otlp_endpoint("http://jaeger:14268/api/traces")
    assert "no maintained Python exporter" in caplog.text


@pytest.mark.parametrize("given", ["jaeger:4318", "ftp://jaeger", "http://"])
def test_a_jaeger_endpoint_that_is_no_url_is_refused_with_an_example(given: str) -> None:
    with pytest.raises(ValueError, match="http://jaeger:4318"):
        jaeger_otlp_endpoint(given)


@pytest.fixture
def no_otel(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_standard_variables_win_over_jaeger(no_otel: pytest.MonkeyPatch) -> None:
    assert exporter_endpoint(None) == ""  # nothing configured: tracing stays off
    assert exporter_endpoint("http://jaeger:4318") == "http://jaeger:4318/v1/traces"
    no_otel.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    assert exporter_endpoint("http://jaeger:4318") is None  # the exporter reads OTEL_* itself
    no_otel.setenv("OTEL_SDK_DISABLED", "true")
    assert exporter_endpoint("http://jaeger:4318") == ""


def test_a_traceparent_round_trips() -> None:
    ctx = parse_traceparent(SAMPLED.encode())
    assert ctx is not None and ctx.is_remote and ctx.trace_flags.sampled
    assert (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}") == (TRACE_ID, SPAN_ID)
    assert format_traceparent(ctx) == SAMPLED


@pytest.mark.parametrize(
    "given",
    [
        b"",
        b"garbage",
        f"ff-{TRACE_ID}-{SPAN_ID}-01".encode(),  # version ff is forbidden
        f"00-{'0' * 32}-{SPAN_ID}-01".encode(),  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01".encode(),  # all-zero span id
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01".encode(),  # upper case is not hex here
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra".encode(),  # version 00 has nothing after
        f"00-{TRACE_ID[:-1]}x-{SPAN_ID}-01".encode(),
        "00-\u00e9".encode(),
        b"\xff" * 55,
    ],
)
def test_a_malformed_traceparent_is_ignored_whole(given: bytes) -> None:
    assert parse_traceparent(given) is None


def test_a_later_version_is_read_by_its_00_fields() -> None:
    ctx = parse_traceparent(f"01-{TRACE_ID}-{SPAN_ID}-01-future")
    assert ctx is not None and f"{ctx.trace_id:032x}" == TRACE_ID


def test_the_bucket_allows_a_burst_then_its_rate() -> None:
    bucket = TokenBucket(5, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(20)) == 5
    assert sum(bucket.take(1.0) for _ in range(20)) == 5
    assert [bucket.take(1.1), bucket.take(1.2), bucket.take(1.3)] == [False, False, True]
    assert not TokenBucket(0, now=0.0).take(10.0)


def request(*headers: tuple[bytes, bytes]) -> Request:
    return Request(b"GET", b"/", list(headers), b"", True, b"127.0.0.1")


def tracing(ratio: float, per_second: int, chance: float = 0.5) -> RouterTracing:
    return RouterTracing(
        TracerProvider().get_tracer("test"),
        RouterTraceConfig(ratio=ratio, per_second=per_second),
        "demo",
        "dev",
        clock=lambda: 0.0,
        chance=lambda: chance,
    )


def test_a_sampled_parent_is_traced_whatever_the_ratio() -> None:
    traced = tracing(ratio=0, per_second=10).sample(request((b"traceparent", SAMPLED.encode())))
    assert traced is not None and traced.parent is not None


def test_without_a_sampled_parent_the_ratio_decides() -> None:
    unsampled = (b"traceparent", f"00-{TRACE_ID}-{SPAN_ID}-00".encode())
    assert tracing(ratio=0.4, per_second=10, chance=0.5).sample(request(unsampled)) is None
    assert tracing(ratio=0.6, per_second=10, chance=0.5).sample(request()) is not None
    assert tracing(ratio=0, per_second=10, chance=0.0).sample(request()) is None


def test_the_bucket_bounds_even_sampled_parents() -> None:
    router = tracing(ratio=1, per_second=3)
    sampled = [router.sample(request((b"traceparent", SAMPLED.encode()))) for _ in range(10)]
    assert sum(t is not None for t in sampled) == 3


def test_an_untraced_request_is_left_as_the_client_sent_it() -> None:
    req = request((b"traceparent", b"not one"))
    assert tracing(ratio=0, per_second=10).sample(req) is None
    assert req.headers == [(b"traceparent", b"not one")]


def table(weights: dict[str, int], versions: dict[str, str], **traces: str) -> RouteTable:
    return RouteTable(
        component="demo",
        environment="dev",
        weights=weights,
        backends=[
            Backend(instance_id=f"{slot}-1", port=1000 + i, version=version, slot=slot)
            for i, (slot, version) in enumerate(versions.items())
        ],
        traces=traces,
    )


def test_a_slot_whose_version_changes_joins_the_publishing_deployments_trace() -> None:
    before = table({"blue": 100}, {"blue": "v1"})
    canary = table({"blue": 100, "green": 0}, {"blue": "v1", "green": "v2"})
    assert rollout_traces(before, canary, SAMPLED) == {"green": SAMPLED}


def test_a_slot_keeps_its_trace_while_its_version_stays_and_shares_the_traffic() -> None:
    before = table({"blue": 100, "green": 0}, {"blue": "v1", "green": "v2"}, green=SAMPLED)
    split = table({"blue": 80, "green": 20}, {"blue": "v1", "green": "v2"})
    other = f"00-{'1' * 32}-{SPAN_ID}-01"
    assert rollout_traces(before, split, other) == {"green": SAMPLED}


def test_a_slot_that_takes_all_the_traffic_leaves_the_deployments_trace() -> None:
    before = table({"blue": 80, "green": 20}, {"blue": "v1", "green": "v2"}, green=SAMPLED)
    promoted = table({"blue": 0, "green": 100}, {"blue": "v1", "green": "v2"})
    assert rollout_traces(before, promoted, SAMPLED) == {}


def test_without_a_traced_deployment_no_slot_gets_a_trace() -> None:
    canary = table({"blue": 100, "green": 0}, {"blue": "v1", "green": "v2"})
    assert rollout_traces(None, canary, None) == {}


def test_an_outgoing_requests_span_keeps_no_path_or_query() -> None:
    secret = "https://hooks.slack.example/services/T000/B000/XXXXSECRET?key=also-secret"
    span = TracerProvider().get_tracer("test").start_span("POST", attributes={"url.full": secret})
    redact_url(span, (b"POST", httpx.URL(secret), [], None, {}))
    span.end()
    assert span.attributes == {"url.full": "https://hooks.slack.example"}  # type: ignore[attr-defined]
