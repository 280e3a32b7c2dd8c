"""The measuring activity of canary and blue-green analysis.

It measures and never judges: conditions, limits and the verdict belong to the workflow.
A measurement that cannot be made (router gone, Prometheus down, a bad query) comes back as
`MetricValue(error=...)` instead of an exception, because the analysis counts such errors
against the metric's `consecutive_error_limit`, as Argo Rollouts does; retrying the activity
would hide them. Only programming errors raise.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity

from activities.analysis.prometheus import (
    PrometheusClient,
    PrometheusError,
    QueryResult,
    QueryTemplateError,
    render_query,
)
from activities.analysis.router_admin import NoRouter, router_url
from activities.analysis.router_metrics import builtin_value, parse, slo_burn_value, window
from activities.infrastructure.provider import InfrastructureProvider
from core.db import slo as slo_store
from core.db.tables import ComponentRow
from core.models.analysis import MeasureRequest, MetricValue, RouterCounters

# Per HTTP call; one measurement makes at most three, so a start-to-close timeout of 30 s
# (20 s with Prometheus only) always leaves room for the answer.
HTTP_TIMEOUT = 5.0
# How long `request_rate` watches the router's counters (see `AnalysisActivities`).
RATE_SAMPLE_SECONDS = 1.0


class MeasurementError(Exception):
    """A measurement could not be made; the message says why."""


class AnalysisActivities:
    """Measures one metric of one version of a deployed target.

    Built-in metrics (no `query`) come from the router of the target: `error_rate` and the
    latency percentiles cover the requests since `req.since` (the counters of the previous
    measurement, or of the baseline read when the analysis started: `req.baseline`), and
    say how many requests that window holds, so the workflow can tell "no data" apart.
    `request_rate` is requests per second over a short sample taken during the measurement
    (`rate_sample` seconds), because the counters carry no time: a rate over the whole
    window would need the time of the previous reading in `RouterCounters`.
    `slo_burn_rate` covers the same window as `error_rate`, judged against the component's
    declared SLO, read from the store (`sessions`) at each measurement.
    """

    def __init__(
        self,
        provider: InfrastructureProvider,
        http: httpx.AsyncClient,
        prometheus_url: str | None,
        *,
        timeout: float = HTTP_TIMEOUT,
        rate_sample: float = RATE_SAMPLE_SECONDS,
        sessions: async_sessionmaker[Any] | None = None,
    ) -> None:
        self.provider = provider
        self.sessions = sessions  # the components' SLOs, for slo_burn_rate
        self.http = http
        self.timeout = timeout
        self.rate_sample = rate_sample
        self.prometheus = (
            PrometheusClient(http, prometheus_url, timeout) if prometheus_url else None
        )

    @activity.defn(name="measure-metric")
    async def measure(self, req: MeasureRequest) -> MetricValue:
        """One measurement of `req.metric` for `req.version` on (component, environment)."""
        if req.metric.query is None:
            result = await self._builtin(req)
        elif req.baseline:  # a query covers its own window: nothing to read beforehand
            return MetricValue()
        else:
            result = await self._query(req, req.metric.query)
        if result.error is not None:
            activity.logger.warning("measurement failed: %s", result.error)
        return result

    # ------------------------------------------------------------------ built-in metrics

    async def _builtin(self, req: MeasureRequest) -> MetricValue:
        try:
            url = await self._metrics_url(req.component, req.environment)
            if req.metric.name == "request_rate" and not req.baseline:
                return await self._request_rate(url, req.version)
            counters = await self._read(url, req.version)
        except MeasurementError as err:
            return MetricValue(error=str(err))
        if req.baseline:  # the start of the analysis' window: counters, nothing to judge
            return MetricValue(counters=counters)
        seen = window(counters, req.since)
        slo = req.metric.slo_name
        if slo is not None:
            try:
                objective, bucket = await self._slo(req.component, slo)
            except MeasurementError as err:
                return MetricValue(error=str(err), counters=counters, requests=seen.requests)
            value = slo_burn_value(seen, slo, objective, bucket)
        else:
            value = builtin_value(req.metric.name, seen, None)
        return MetricValue(value=value, counters=counters, requests=seen.requests)

    async def _slo(self, component: str, slo: str) -> tuple[float, float | None]:
        """The objective (and latency bucket) of the component's SLO, as declared now."""
        if self.sessions is None:
            raise MeasurementError("slo_burn_rate needs the store, which this worker lacks")
        async with self.sessions() as session:
            stored = await session.scalar(
                select(ComponentRow.slo).where(ComponentRow.name == component)
            )
        spec = slo_store.spec_of(stored)
        if spec is None or (slo == "latency" and spec.latency is None):
            raise MeasurementError(f"{component} declares no {slo} SLO any more")
        if slo == "latency" and spec.latency is not None:
            return spec.latency.objective, spec.latency.bucket
        assert spec.availability is not None
        return spec.availability.objective, None

    async def _metrics_url(self, component: str, environment: str) -> str:
        try:
            # The admin port, not the public endpoint: there /_r2c/metrics is the application's.
            return await router_url(self.provider, component, environment, "metrics_url", "measure")
        except NoRouter as err:
            raise MeasurementError(str(err)) from err

    async def _read(self, url: str, version: str) -> RouterCounters:
        """The router's cumulative counters of `version` (zero if it has seen no request)."""
        try:
            resp = await self.http.get(url, timeout=self.timeout)
            resp.raise_for_status()
        except httpx.HTTPError as err:
            raise MeasurementError(
                f"cannot read the router's metrics at {url}: {type(err).__name__}: {err}"
            ) from err
        try:
            return parse(resp.text).get(version, RouterCounters())
        except ValueError as err:
            raise MeasurementError(f"the router's metrics at {url} are unreadable: {err}") from err

    async def _request_rate(self, url: str, version: str) -> MetricValue:
        first = await self._read(url, version)
        started = time.monotonic()
        await asyncio.sleep(self.rate_sample)
        last = await self._read(url, version)
        seconds = time.monotonic() - started
        seen = window(last, first)
        value = builtin_value("request_rate", seen, seconds)
        return MetricValue(value=value, counters=last, requests=seen.requests)

    # ------------------------------------------------------------------ Prometheus

    async def _query(self, req: MeasureRequest, template: str) -> MetricValue:
        if self.prometheus is None:
            return MetricValue(
                error=f"metric {req.metric.name} has a query but PROMETHEUS_URL is not set"
            )
        try:
            promql = render_query(
                template,
                version=req.version,
                component=req.component,
                environment=req.environment,
            )
            result = await self.prometheus.query(promql)
        except (QueryTemplateError, PrometheusError) as err:
            return MetricValue(error=str(err))
        return _one_value(result)


def _one_value(result: QueryResult) -> MetricValue:
    """A query's answer as one value a condition can judge.

    No series, or NaN (0/0 when nothing was requested), is no evidence: no value, and the
    workflow judges it inconclusive. Infinities are refused as errors because they cannot
    cross Temporal's JSON payloads (they would arrive as null).
    """
    if isinstance(result, list):
        return MetricValue(
            error=f"the query returns {len(result)} series; aggregate them into one "
            "(for example with sum() or max())"
        )
    if result is None or math.isnan(result):
        return MetricValue(value=None)
    if math.isinf(result):
        return MetricValue(error=f"the query returns {result}, which no condition can judge")
    return MetricValue(value=result)
