"""One trace from the request to the instance: a deployment started through the API, its
workflow and activities on the worker, and the router's spans for the new version's traffic,
all exported over OTLP/HTTP to a real receiver and found under one trace id."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from temporalio.api.enums.v1 import EventType

from activities.infrastructure.local.launch import router_env
from api.app import create_app
from cli.load import run_load
from core.settings import Settings
from core.temporal import connect
from core.tracing import is_enabled, setup_tracing, shutdown_tracing
from tests.canaries import BAD_CANARY
from tests.integration.deploying import FINAL, deploy, first_version, register_demo, until
from tests.integration.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.integration.system import System
from tests.support import wait_for

EXPORTER_THREAD = "OtelBatch"  # the SDK's batch processor: OtelBatchSpanRecordProcessor


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture
def traced(
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
) -> Iterator[OtlpReceiver]:
    """This process (API and worker) and the routers its worker starts export to `receiver`;
    the routers record every request (within the bucket)."""
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")  # ms: spans out quickly
    monkeypatch.setenv("R2C_ROUTER_TRACE_RATIO", "1")
    monkeypatch.setenv("R2C_ROUTER_TRACES_PER_SECOND", "1000")
    setup_tracing("test", make_settings())
    try:
        yield receiver
    finally:
        shutdown_tracing()


def exporter_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(EXPORTER_THREAD)]


def span_tree(spans: list[ReceivedSpan]) -> str:
    """The trace as an indented tree (names, services, durations), for the report."""
    children: dict[str, list[ReceivedSpan]] = {}
    ids = {s.span_id for s in spans}
    for span in sorted(spans, key=lambda s: s.start_ns):
        parent = span.parent_span_id if span.parent_span_id in ids else ""
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        shown: dict[str, int] = {}
        for span in children.get(parent, []):
            shown[span.name] = shown.get(span.name, 0) + 1
            if shown[span.name] > 3:
                continue  # the fourth GET of a probe or the router says nothing new
            version = span.attributes.get("r2c.version")
            lines.append(
                f"{'  ' * depth}{span.name} [{span.service}] {span.duration_ms:.1f} ms"
                + (f" version={version}" if version else "")
            )
            walk(span.span_id, depth + 1)
        for name, count in shown.items():
            if count > 3:
                lines.append(f"{'  ' * depth}... and {count - 3} more {name!r}")

    walk("", 0)
    return "\n".join(lines)


async def test_a_deployment_is_one_trace_from_the_request_to_the_new_versions_traffic(
    traced: OtlpReceiver, make_system: Callable[..., Any]
) -> None:
    assert exporter_threads()  # the batch exporter of this process runs
    system: System = await register_demo(await make_system())
    endpoint = await first_version(system)
    load = asyncio.create_task(run_load(endpoint + "/", rps=40, duration=12))
    started = await deploy(system, "v2", BAD_CANARY)
    done = await until(system, started["id"], *FINAL, within=90)
    assert done["state"] == "succeeded", done
    await load

    def request_span(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
        # The first deployment's request is in the receiver too: the second one is the last.
        posts = [
            s
            for s in spans
            if s.name == "POST /api/v1/deployments"
            and s.service == "r2c-test"
            and s.attributes.get("http.response.status_code", s.attributes.get("http.status_code"))
            == 202
        ]
        return max(posts, key=lambda s: s.start_ns) if posts else None

    post = await wait_for(
        lambda: asyncio.sleep(0, request_span(traced.snapshot())), what="the API's span"
    )
    assert post is not None
    run = await wait_for(
        lambda: asyncio.sleep(
            0,
            [
                s
                for s in traced.snapshot()
                if s.trace_id == post.trace_id and s.name.startswith("RunWorkflow:")
            ],
        ),
        what="the workflow's span in the request's trace",
    )
    workflow_id = run[0].attributes["temporalWorkflowID"]
    history = await system.temporal.get_workflow_handle(workflow_id).fetch_history()
    activity_types = {
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert activity_types

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = {s.name for s in spans if s.trace_id == post.trace_id}
        new_version_routed = any(
            s.name == "router GET" and s.attributes.get("r2c.version") == "v2"
            for s in spans
            if s.trace_id == post.trace_id
        )
        return new_version_routed and {f"RunActivity:{t}" for t in activity_types} <= names

    spans = await wait_for(
        lambda: asyncio.sleep(0, traced.snapshot()),
        complete,
        within=30,
        what="every activity and the new version's traffic in the request's trace",
    )
    trace = [s for s in spans if s.trace_id == post.trace_id]
    names = {s.name for s in trace}
    assert any(n.startswith("StartWorkflow:") for n in names), names
    assert {s.service for s in trace} == {"r2c-test", "r2c-router"}
    routed = [s for s in trace if s.name.startswith("router ")]
    # Only the version being rolled out joins the deployment's trace, not the stable one.
    assert {s.attributes["r2c.version"] for s in routed} == {"v2"}
    assert all(s.attributes["http.response.status_code"] == 200 for s in routed)
    # Outgoing requests (probes, the router's status) keep no path or query in their spans.
    outgoing = [s for s in trace if s.name == "GET"]
    urls = [s.attributes.get("url.full", s.attributes.get("http.url", "")) for s in outgoing]
    assert urls and all(urlsplit(u).path == "" and urlsplit(u).port for u in urls), urls[:3]
    print(f"\none trace, {len(trace)} spans ({len(routed)} router spans):\n{span_tree(trace)}")


async def test_nothing_configured_means_no_tracing_at_all(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "not-an-endpoint")  # a name alone exports nothing
    settings = make_settings()
    setup_tracing("api", settings)
    assert not is_enabled()
    assert not exporter_threads()
    assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    app = create_app(settings)
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    client = await connect(settings, lazy=True)
    assert not client.config()["interceptors"]
    assert not any(name.startswith("OTEL_") for name in router_env(settings.home))
