"""OpenTelemetry tracing for the API, the worker and the router.

Configured by the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` and
`OTEL_TRACES_SAMPLER_ARG` (read by the SDK itself), plus `JAEGER_ENDPOINT`, mapped to Jaeger's
own OTLP/HTTP receiver. With none of them set nothing is installed: no provider, no exporter
thread, no instrumentation, no Temporal interceptor, so a process without tracing pays nothing.
See docs/tracing.md.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags

from core.settings import Settings

log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
JAEGER_OTLP_PORT = 4318
JAEGER_THRIFT_PORT = 14268
OTLP_TRACES_PATH = "/v1/traces"
# Noise that would drown the requests that matter: probes and scrapes, every few seconds.
EXCLUDED_URLS = "/health$,/ready$,/metrics$"


@dataclass
class _Tracing:
    provider: object  # opentelemetry.sdk.trace.TracerProvider, imported only when used
    process: str


_state: _Tracing | None = None


def jaeger_otlp_endpoint(jaeger_endpoint: str) -> str:
    """Jaeger's OTLP/HTTP traces URL for a `JAEGER_ENDPOINT`. Jaeger takes OTLP natively on
    :4318; the old collector URL (`http://host:14268/api/traces`, Thrift over HTTP) has no
    maintained Python exporter any more, so it is mapped to the same host's OTLP port."""
    parts = urlsplit(jaeger_endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "JAEGER_ENDPOINT must be an http(s) URL such as http://jaeger:4318,"
            f" got {jaeger_endpoint!r}"
        )
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port == JAEGER_THRIFT_PORT or parts.path.rstrip("/") == "/api/traces":
        log.warning(
            "JAEGER_ENDPOINT %s is Jaeger's Thrift collector, which no maintained Python exporter"
            " speaks; sending OTLP/HTTP to port %s of the same host instead",
            jaeger_endpoint,
            JAEGER_OTLP_PORT,
        )
        return urlunsplit((parts.scheme, f"{host}:{JAEGER_OTLP_PORT}", OTLP_TRACES_PATH, "", ""))
    netloc = f"{host}:{parts.port or JAEGER_OTLP_PORT}"
    path = parts.path.rstrip("/")
    if not path.endswith(OTLP_TRACES_PATH):
        path += OTLP_TRACES_PATH
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def exporter_endpoint(jaeger_endpoint: str | None) -> str | None:
    """Where spans go: None when the standard OTLP variables say (the exporter reads them
    itself), the mapped Jaeger URL otherwise; "" when nothing is configured (or the SDK is
    disabled by `OTEL_SDK_DISABLED=true`, as every OpenTelemetry SDK honours it)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ""
    if any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return None
    if jaeger_endpoint:
        return jaeger_otlp_endpoint(jaeger_endpoint)
    return ""


def configure(process: str, jaeger_endpoint: str | None = None) -> bool:
    """Install the SDK provider for this process when an endpoint is configured (idempotent);
    True when tracing is on. The router calls this directly, API and worker via
    `setup_tracing`."""
    global _state
    if _state is not None:
        return True
    endpoint = exporter_endpoint(jaeger_endpoint)
    if endpoint == "":
        return False
    # Imported here: a process without tracing never loads the SDK or the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"r2c-{process}"}
    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), parentbased_always_on by default; the
    # provider flushes and shuts down at interpreter exit by itself (atexit).
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)  # once per process; later calls are refused by OTel
    _state = _Tracing(provider, process)
    log.info("tracing on", extra={"r2c_process": process, "endpoint": endpoint or "OTEL_*"})
    return True


def setup_tracing(process_name: str, settings: Settings) -> None:
    """Configure tracing for the API or the worker from the OTEL_* variables and
    `JAEGER_ENDPOINT`; outgoing httpx requests (probes, webhooks, notifications) get spans
    and `traceparent`. Nothing configured: nothing installed."""
    if _state is not None or not configure(process_name, settings.jaeger_endpoint):
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument(
        tracer_provider=tracer_provider(),
        request_hook=redact_url,
        async_request_hook=_async_redact_url,
    )


# The URL attributes of an outgoing request's span, by semantic-conventions version.
URL_ATTRIBUTES = ("url.full", "http.url")


def redact_url(span: trace.Span, request: Any) -> None:
    """Keep only the scheme, host and port of an outgoing request's URL in its span: the rest
    may be a secret (a Slack incoming webhook's token is its path; some receivers take a key
    in the query), and spans leave for a tracing backend that is not a secret store."""
    if not span.is_recording():
        return
    url = request[1]
    try:
        scheme, host, port = url.scheme, url.host, url.port
    except AttributeError:
        return
    kept = f"{scheme}://{host}" + (f":{port}" if port else "")
    recorded = getattr(span, "attributes", None) or {}
    for key in URL_ATTRIBUTES:
        if key in recorded:
            span.set_attribute(key, kept)


async def _async_redact_url(span: trace.Span, request: Any) -> None:
    redact_url(span, request)


def is_enabled() -> bool:
    """Whether this process records and exports spans."""
    return _state is not None


def tracer_provider() -> trace.TracerProvider | None:
    """This process's SDK provider, None when tracing is off."""
    return None if _state is None else _state.provider  # type: ignore[return-value]


def tracer(name: str) -> trace.Tracer | None:
    """A tracer of this process's provider, None when tracing is off."""
    provider = tracer_provider()
    return None if provider is None else provider.get_tracer(name)


def shutdown_tracing() -> None:
    """Export what is buffered and stop the exporter (on process exit, and between tests)."""
    global _state
    state, _state = _state, None
    if state is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    state.provider.shutdown()  # type: ignore[attr-defined]


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span when it is sampled, else None."""
    return format_traceparent(trace.get_current_span().get_span_context())


def format_traceparent(ctx: SpanContext) -> str | None:
    """`00-<trace id>-<span id>-<flags>` of a sampled, valid span context; None otherwise."""
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def parse_traceparent(value: bytes | str) -> SpanContext | None:
    """A remote span context from a W3C `traceparent` (version 00 layout), or None when it is
    not one: hostile headers are ignored, never trusted in part."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    value = value.strip()
    if len(value) < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    version, trace_id, span_id, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if (
        version == "ff"
        or (version == "00" and len(value) != 55)
        or (len(value) > 55 and value[55] != "-")
    ):
        return None
    try:
        ids = int(version, 16), int(trace_id, 16), int(span_id, 16), int(flags, 16)
    except ValueError:
        return None
    if not all(c in "0123456789abcdef" for c in value[:55].replace("-", "")):
        return None
    if ids[1] == 0 or ids[2] == 0:
        return None
    return SpanContext(ids[1], ids[2], is_remote=True, trace_flags=TraceFlags(ids[3]))
