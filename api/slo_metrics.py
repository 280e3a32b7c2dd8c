"""Error budget metrics of the components' SLOs, read from the store at each scrape.

Like the deployment families (api/deployment_metrics.py): the samples the health check keeps
are summed at every scrape, so any API replica answers the same and nothing goes stale when
a worker stops; a store error leaves the families empty and logs a warning. The alert rules
(deploy/prometheus/alerts.yml) are written on these names: do not rename them.

- `r2c_slo_objective{component,environment,slo}`
- `r2c_slo_error_budget_remaining_ratio{component,environment,slo}` (absent without traffic)
- `r2c_slo_latency_threshold_seconds{component,environment}` (the router bucket judged)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from api.store_collector import StoreCollector
from core.db import slo as store
from core.settings import Settings

log = logging.getLogger(__name__)


class SloCollector(StoreCollector["_Families"]):
    """The SLO families, computed from the store's samples at each scrape."""

    what = "SLO samples"

    def _families(self) -> _Families:
        return _Families()

    def _fill(self, conn: Connection, f: _Families) -> None:
        now = self._now()
        for component_id, component, stored in conn.execute(store.components_query()).all():
            try:
                spec = store.spec_of(stored)
            except ValidationError:  # written by a newer version with other bounds
                log.warning("SLOs of %s unreadable; left out of /metrics", component)
                continue
            if spec is None:
                continue
            for status in store.statuses_sync(conn, component_id, spec, now):
                labels = [component, status.environment, status.slo]
                f.objective.add_metric(labels, status.objective)
                if status.error_budget_remaining is not None:
                    f.remaining.add_metric(labels, status.error_budget_remaining)
                if status.threshold_seconds is not None:
                    f.threshold.add_metric(
                        [component, status.environment], status.threshold_seconds
                    )


class _Families:
    """One set of empty families per scrape."""

    def __init__(self) -> None:
        labels = ["component", "environment", "slo"]
        self.objective = GaugeMetricFamily(
            "r2c_slo_objective",
            "The share of good requests a component's SLO promises (availability, latency)",
            labels=labels,
        )
        self.remaining = GaugeMetricFamily(
            "r2c_slo_error_budget_remaining_ratio",
            "1 - (bad/total over the SLO's window) / (1 - objective): 1 untouched, 0 spent,"
            " negative overspent; absent without traffic",
            labels=labels,
        )
        self.threshold = GaugeMetricFamily(
            "r2c_slo_latency_threshold_seconds",
            "The router bucket a latency SLO judges requests at",
            labels=["component", "environment"],
        )

    def all(self) -> Iterable[Metric]:
        return [self.objective, self.remaining, self.threshold]


def watch_slos(settings: Settings, registry: CollectorRegistry = REGISTRY) -> SloCollector:
    """Serve the SLO gauges from `registry` (the API process calls this once); `close()` the
    result to drop its engine."""
    collector = SloCollector(settings)
    registry.register(collector)
    return collector
