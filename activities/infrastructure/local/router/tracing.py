"""The router's spans: which proxied requests get one, and the `traceparent` the instance sees.

Only built when the router's process traces (`core.tracing.configure`): otherwise the router
holds None and its hot path does no work for tracing at all. A request gets a span when its
own `traceparent` is sampled, or else at `R2C_ROUTER_TRACE_RATIO`; in both cases at most
`R2C_ROUTER_TRACES_PER_SECOND` a second (a token bucket), because any client can send a
sampled `traceparent`. A span's parent is the request's own trace; for a request without
one, sent to a slot that a deployment is rolling out (`RouteTable.traces`), the deployment's
trace; else it starts a trace. See docs/tracing.md.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from pydantic import BaseModel, Field

from activities.infrastructure.local.router.table import RouteTable
from core.settings import Settings
from core.tracing import format_traceparent, parse_traceparent

if TYPE_CHECKING:
    from activities.infrastructure.local.router.request import Request
    from activities.infrastructure.local.router.upstream import BackendState

TRACEPARENT = b"traceparent"


class RouterTraceConfig(BaseModel):
    """The router's sampling, from the variables the worker passes on (same bounds as
    `Settings.router_trace_ratio` and `router_traces_per_second`)."""

    ratio: float = Field(Settings.model_fields["router_trace_ratio"].default, ge=0, le=1)
    per_second: int = Field(
        Settings.model_fields["router_traces_per_second"].default, ge=0, le=10_000
    )

    @classmethod
    def from_env(cls) -> RouterTraceConfig:
        values = {
            key: os.environ[name]
            for key, name in (
                ("ratio", "R2C_ROUTER_TRACE_RATIO"),
                ("per_second", "R2C_ROUTER_TRACES_PER_SECOND"),
            )
            if name in os.environ
        }
        return cls.model_validate(values)


class TokenBucket:
    """At most `rate` takes a second, in bursts of at most `rate` (at least one)."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> bool:
        if self.rate <= 0:
            return False
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class RouterTracing:
    """Sampling decisions and span making for one router."""

    def __init__(
        self,
        tracer: trace.Tracer,
        config: RouterTraceConfig,
        component: str,
        environment: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.tracer = tracer
        self.ratio = config.ratio
        self.bucket = TokenBucket(config.per_second, clock())
        self.clock = clock
        self.chance = chance
        self.attributes = {"r2c.component": component, "r2c.environment": environment}
        self.slot_parents: dict[str, SpanContext] = {}

    def apply(self, table: RouteTable) -> None:
        """Follow a new routing table's deployment traces (parsed once, not per request)."""
        parents = {slot: parse_traceparent(value) for slot, value in table.traces.items()}
        self.slot_parents = {slot: ctx for slot, ctx in parents.items() if ctx is not None}

    def sample(self, req: Request) -> TracedRequest | None:
        """A span for this request, or None (then nothing about the request changes)."""
        incoming: SpanContext | None = None
        for name, value in req.headers:
            if name == TRACEPARENT:
                incoming = parse_traceparent(value)
                break
        if incoming is None or not incoming.trace_flags.sampled:
            ratio = self.ratio
            if ratio <= 0 or (ratio < 1 and self.chance() >= ratio):
                return None
        if not self.bucket.take(self.clock()):
            return None
        return TracedRequest(self, req, incoming)


class TracedRequest:
    """One sampled request: its span starts when its backend is picked (the slot decides the
    parent) and ends with the answer."""

    __slots__ = ("tracing", "req", "parent", "span", "raw", "state")

    def __init__(self, tracing: RouterTracing, req: Request, parent: SpanContext | None) -> None:
        self.tracing = tracing
        self.req = req
        self.parent = parent
        self.span: trace.Span | None = None
        self.raw = b""
        self.state: BackendState | None = None

    def prepare(self, state: BackendState, trust_forwarded: bool) -> bytes:
        """The request's bytes for `state`, with the span's own `traceparent`; a retry on
        another backend keeps the span (and its header) of the first try."""
        self.state = state
        if self.span is None:
            span = self._start(self.parent or self.tracing.slot_parents.get(state.backend.slot))
            own = format_traceparent(span.get_span_context())
            headers = [(n, v) for n, v in self.req.headers if n != TRACEPARENT]
            if own is not None:
                headers.append((TRACEPARENT, own.encode()))
            self.req.headers = headers
            self.raw = self.req.upstream_bytes(trust_forwarded)
        return self.raw

    def finish(self, status: int) -> None:
        span = self.span or self._start(self.parent)
        state = self.state
        if state is not None:
            b = state.backend
            span.set_attributes(
                {
                    "r2c.version": b.version,
                    "r2c.slot": b.slot,
                    "r2c.instance": b.instance_id,
                    "server.address": b.host,
                    "server.port": b.port,
                }
            )
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def _start(self, parent: SpanContext | None) -> trace.Span:
        method = self.req.method.decode("latin-1")
        # An empty context when there is no parent: never some ambient span of the process.
        context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else Context()
        self.span = self.tracing.tracer.start_span(
            f"router {method}",
            context=context,
            kind=SpanKind.SERVER,
            attributes={**self.tracing.attributes, "http.request.method": method},
        )
        return self.span
