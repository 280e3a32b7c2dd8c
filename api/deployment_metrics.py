"""Deployment metrics and DORA gauges, read from the store at every scrape (like the
component health gauges of api/metrics.py): any API replica answers the same, and nothing
goes stale when a worker stops. A few bounded queries per scrape; a store error leaves the
families empty and logs a warning, the scrape itself still succeeds."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy.engine import Connection

from api.store_collector import StoreCollector
from core.db import insights as q
from core.insights import DeploymentFact, by_target
from core.models.deployments import DeploymentState, PauseReason
from core.settings import Settings

log = logging.getLogger(__name__)

DORA_WINDOW = timedelta(days=30)
# The newest deployments per scrape that feed the duration histogram and the DORA gauges.
ROW_LIMIT = 10_000
DURATION_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0)


class DeploymentCollector(StoreCollector["_Families"]):
    """The deployment families of docs/observability.md, computed from the store."""

    what = "deployments"

    def _families(self) -> _Families:
        return _Families()

    def _fill(self, conn: Connection, f: _Families) -> None:
        now = self._now()
        for component, environment, strategy, state, count in conn.execute(q.outcomes_query()):
            f.total.add_metric([component, environment, strategy, state], float(count))
        for component, environment, klass, count in conn.execute(q.rollbacks_query()):
            f.rollbacks.add_metric([component, environment, klass], float(count))
        _fill_unfinished(conn.execute(q.unfinished_query(ROW_LIMIT)).all(), now, f)
        since = now - DORA_WINDOW
        facts = q.to_facts(conn.execute(q.facts_query(since, limit=ROW_LIMIT)).all())
        _fill_durations(facts, f)
        for (component, environment), d in by_target(facts, DORA_WINDOW.total_seconds()).items():
            labels = [component, environment]
            f.frequency.add_metric(labels, d.deployment_frequency_per_day)
            for value, family in (
                (d.lead_time_p50_seconds, f.lead_time),
                (d.change_failure_rate, f.failure_ratio),
                (d.time_to_restore_p50_seconds, f.restore),
            ):
                if value is not None:
                    family.add_metric(labels, value)


def _fill_unfinished(rows: Sequence[Any], now: datetime, f: _Families) -> None:
    running: dict[tuple[str, str], int] = {}
    waiting: dict[tuple[str, str], list[float]] = {}
    for component, environment, state, status, updated_at in rows:
        target = (component, environment)
        running[target] = running.get(target, 0) + 1
        reason = status.get("pause_reason") if isinstance(status, dict) else None
        if state == DeploymentState.PAUSED.value and reason == PauseReason.APPROVAL.value:
            # Paused for approval since its last recorded change.
            age = max(0.0, (now - _aware(updated_at)).total_seconds())
            waiting.setdefault(target, []).append(age)
    for (component, environment), n in sorted(running.items()):
        f.in_progress.add_metric([component, environment], float(n))
    for (component, environment), ages in sorted(waiting.items()):
        f.approvals.add_metric([component, environment], float(len(ages)))
        f.approval_age.add_metric([component, environment], max(ages))


def _fill_durations(facts: list[DeploymentFact], f: _Families) -> None:
    groups: dict[tuple[str, str], list[float]] = {}
    for fact in facts:
        if fact.finished_at is not None:
            seconds = max(0.0, (fact.finished_at - fact.created_at).total_seconds())
            groups.setdefault((fact.component, fact.environment), []).append(seconds)
    for (component, environment), values in sorted(groups.items()):
        buckets = [(_le(b), float(sum(1 for v in values if v <= b))) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", float(len(values))))
        f.duration.add_metric([component, environment], buckets, sum_value=sum(values))


def _le(bound: float) -> str:
    return str(bound)


def _aware(value: datetime | str) -> datetime:
    # The Core statement keeps the column type, but SQLite may still hand back naive times.
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Families:
    """One set of empty families per scrape."""

    def __init__(self) -> None:
        target = ["component", "environment"]
        self.total = CounterMetricFamily(
            "r2c_deployments",
            "Ended deployments in the store, by outcome (succeeded, rolled_back, aborted, failed)",
            labels=[*target, "strategy", "outcome"],
        )
        self.in_progress = GaugeMetricFamily(
            "r2c_deployments_in_progress", "Deployments not ended yet", labels=target
        )
        self.duration = HistogramMetricFamily(
            "r2c_deployment_duration_seconds",
            "Creation to end of the deployments created in the last 30 days",
            labels=target,
        )
        self.rollbacks = CounterMetricFamily(
            "r2c_rollbacks",
            "Deployments undone, by reason class (analysis, deadline, abort, error)",
            labels=[*target, "reason_class"],
        )
        self.approvals = GaugeMetricFamily(
            "r2c_approvals_waiting", "Deployments paused for an approval", labels=target
        )
        self.approval_age = GaugeMetricFamily(
            "r2c_approval_waiting_seconds",
            "How long the oldest deployment paused for an approval has waited",
            labels=target,
        )
        self.frequency = GaugeMetricFamily(
            "r2c_dora_deployment_frequency_per_day",
            "Successful deployments per day over 30 days",
            labels=target,
        )
        self.lead_time = GaugeMetricFamily(
            "r2c_dora_lead_time_seconds",
            "Median time from a deployment's creation to its success over 30 days",
            labels=target,
        )
        self.failure_ratio = GaugeMetricFamily(
            "r2c_dora_change_failure_ratio",
            "Deployments rolled back or failed over those ended, 30 days",
            labels=target,
        )
        self.restore = GaugeMetricFamily(
            "r2c_dora_time_to_restore_seconds",
            "Median time from a failed change to the next success of its target, 30 days",
            labels=target,
        )

    def all(self) -> Iterable[Metric]:
        return [
            self.total,
            self.in_progress,
            self.duration,
            self.rollbacks,
            self.approvals,
            self.approval_age,
            self.frequency,
            self.lead_time,
            self.failure_ratio,
            self.restore,
        ]


def watch_deployments(
    settings: Settings, registry: CollectorRegistry = REGISTRY
) -> DeploymentCollector:
    """Serve the deployment families from `registry` (the API process calls this once);
    `close()` the result to drop its engine."""
    collector = DeploymentCollector(settings)
    registry.register(collector)
    return collector
