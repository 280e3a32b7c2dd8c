"""The API's Prometheus metrics, served on `METRICS_PORT` apart from the API itself."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from core.db.migrate import sync_url
from core.models.health import Condition
from core.settings import Settings

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "r2c_http_requests_total",
    "HTTP requests answered, by route template, method and status code",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "r2c_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WORKFLOW_STARTS = Counter(
    "r2c_workflow_starts_total",
    "Workflow start requests, by workflow type and outcome (created or existing)",
    ["type", "outcome"],
)


def scrape_engine(settings: Settings) -> Engine:
    """A small synchronous engine of the store for collectors read at each scrape: they run
    on the metrics server's own thread, apart from the app's event loop; a store that hangs
    makes a short gap in their families, not a hung scrape."""
    url = sync_url(settings)
    timeout = {"timeout": 5} if url.startswith("sqlite") else {"connect_timeout": 5}
    return create_engine(url, pool_size=1, max_overflow=1, connect_args=timeout)


class ComponentHealthCollector(Collector):
    """`r2c_component_healthy{component}` (1 healthy, 0 unhealthy; absent while unknown) and
    the time of each component's last check, read from the store at every scrape.

    The store holds the states every worker's health rounds wrote, so any API replica answers
    the same and nothing goes stale when a worker stops; the read is one small query, run on
    the metrics server's own thread through a synchronous engine of its own."""

    def __init__(self, settings: Settings) -> None:
        self._engine = scrape_engine(settings)

    def describe(self) -> Iterable[Metric]:
        # Registering must not query the store: these are the families collect() yields.
        return [_healthy_family(), _checked_family()]

    def collect(self) -> Iterable[Metric]:
        healthy, checked = _healthy_family(), _checked_family()
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(_HEALTH_QUERY).all()
        except SQLAlchemyError as err:
            # A scrape still gets the request metrics; the gap in these says the store is away.
            log.warning("component health not read for /metrics: %s", type(err).__name__)
            rows = []
        for name, state, checked_at in rows:
            if state != Condition.UNKNOWN.value:
                healthy.add_metric([name], 1.0 if state == Condition.HEALTHY.value else 0.0)
            checked.add_metric([name], _aware(checked_at).timestamp())
        return [healthy, checked]

    def close(self) -> None:
        self._engine.dispose()


_HEALTH_QUERY = text(
    "SELECT c.name, h.state, h.checked_at FROM component_health h"
    " JOIN components c ON c.id = h.component_id ORDER BY c.name"
)


def _healthy_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "r2c_component_healthy",
        "1 when the last health check found every instance of the component healthy, 0 when"
        " not; absent while no instance of it runs",
        labels=["component"],
    )


def _checked_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "r2c_component_health_checked_timestamp_seconds",
        "When the component's health was last checked (Unix time): alert when it lags",
        labels=["component"],
    )


def _aware(value: datetime | str) -> datetime:
    # Raw SQL skips the column type: SQLite hands back text, sometimes without a zone.
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def watch_component_health(
    settings: Settings, registry: CollectorRegistry = REGISTRY
) -> ComponentHealthCollector:
    """Serve the component health gauges from `registry` (the API process calls this once,
    with the registry its metrics port serves); `close()` the result to drop its engine."""
    collector = ComponentHealthCollector(settings)
    registry.register(collector)
    return collector
