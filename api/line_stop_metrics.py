"""`r2c_line_stopped{scope}`: 1 for each stop-the-line switch in force, read from the store at
each scrape (like api/slo_metrics.py), so any API replica answers the same. The global scope
is always present (0 or 1), so an alert can say "the line has been stopped for an hour"."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import select
from sqlalchemy.engine import Connection

from api.store_collector import StoreCollector
from core.db.line_stops_tables import LineStopRow
from core.models.line_stops import GLOBAL_SCOPE
from core.settings import Settings

# Bounded: a scrape never carries more series than this, however many pipelines are stopped.
MAX_SCOPES = 1_000


class LineStopCollector(StoreCollector["_Families"]):
    """The stop-the-line gauge, computed from the line_stops table."""

    what = "line stops"

    def _families(self) -> _Families:
        return _Families()

    def _fill(self, conn: Connection, f: _Families) -> None:
        query = select(LineStopRow.scope).order_by(LineStopRow.scope).limit(MAX_SCOPES)
        scopes = set(conn.execute(query).scalars())
        for scope in sorted(scopes | {GLOBAL_SCOPE}):
            f.stopped.add_metric([scope], 1.0 if scope in scopes else 0.0)


class _Families:
    def __init__(self) -> None:
        self.stopped = GaugeMetricFamily(
            "r2c_line_stopped",
            "1 while the stop-the-line switch of the scope (global, pipeline:<name>) is set",
            labels=["scope"],
        )

    def all(self) -> Iterable[Metric]:
        return [self.stopped]


def watch_line_stops(
    settings: Settings, registry: CollectorRegistry = REGISTRY
) -> LineStopCollector:
    """Serve the stop-the-line gauge from `registry` (the API process calls this once)."""
    collector = LineStopCollector(settings)
    registry.register(collector)
    return collector
