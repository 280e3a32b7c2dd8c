"""The judging activity of judge metrics (`judge-window`): the new version against its
baseline, judged by the statistical judge (core/judge), the judgement kept for replays and
pinned baselines.

Each call reads both sides' data, builds a `Recording` (the data per source), judges it and
keeps it through a `JudgementStore`, and returns the `JudgeResult` only: the samples stay out
of the workflow's history. As with `AnalysisActivities.measure`, a judgement that cannot be
made (no router, router or Prometheus down, a series query refused, the store unreachable
for a pinned baseline)
comes back as `MetricValue(error=...)`, which the analysis counts against the metric's
`consecutive_error_limit`; only programming errors raise.

Windows, in seconds since the epoch on the router's clock (the worker's: the router runs on
the same host):

- canary: the new version over [window start, now);
- `concurrent`: the previous version over the very same window; when the previous version
  is the new one (a configuration-only redeploy: the router keys samples by version label),
  `before`, and the result says so;
- `before`: the previous version over [deployment start - baseline_window, deployment start);
- `pinned`: the canary side of the last passing judgement of this target kept by another
  deployment; with none, `before`, and the result says so.

The router keeps its samples in buckets (10 s wide by default) and answers a bucket when its
*start* lies in the window asked for. So a bucket that straddles a window's start is left
out (it may hold requests from before the window: a canary's before its weight was set), and
one that straddles its end is in (for a window ending now it is the bucket still filling;
leaving it out would drop up to 10 s of every window). Both sides of a `concurrent` judgement
ask for the same [since, until), so they hold exactly the same buckets. A `before` window's
last bucket may hold a few seconds after the deployment started, of the previous version
only: the new version gets no traffic before its instances start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import httpx
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity

from activities.analysis.judge_series import SeriesError, series_pair
from activities.analysis.prometheus import PrometheusClient
from activities.analysis.router_admin import NoRouter, router_url
from activities.analysis.router_samples import HTTP_TIMEOUT, SamplesError, fetch, merge
from activities.infrastructure.provider import InfrastructureProvider
from core.judge.config import JudgeMetric
from core.judge.data import (
    MAX_LATENCY_SECONDS,
    MAX_REQUESTS,
    MAX_SAMPLES,
    ErrorCounts,
    ErrorData,
    LatencyData,
    SeriesData,
)
from core.judge.judge import judge
from core.judge.recording import (
    NewJudgement,
    Recording,
    StoredJudgement,
    Window,
    request_for,
)
from core.judge.result import JudgeResult
from core.judge.spec import ResolvedBaseline
from core.models.analysis import JudgeWindowRequest, MetricValue

JUDGE_ACTIVITY = "judge-window"  # as workflows/deployment/activities.py calls it


class JudgementStore(Protocol):
    """Where judgements are kept (core/db/judgements.py `SqlJudgementStore`)."""

    async def save(self, judgement: NewJudgement) -> None:
        """Keep it, replacing the one of the same deployment, `where` and metric."""
        ...

    async def last_passed(
        self, component: str, environment: str, *, excluding_deployment: str
    ) -> StoredJudgement | None:
        """The newest passing judgement of the target made by another deployment."""
        ...


class JudgingError(Exception):
    """A judgement could not be made; the message says why."""


class _Side:
    """One version's router data over one window."""

    def __init__(
        self, requests: int, errors: int, latencies: list[float], held_since: float | None = None
    ) -> None:
        self.counts = ErrorCounts(
            requests=min(requests, MAX_REQUESTS), errors=min(errors, requests, MAX_REQUESTS)
        )
        self.latencies = latencies
        # Where the router's history began, when the window asked for started earlier (it
        # keeps 180 buckets, whatever their width): the window lost its beginning.
        self.held_since = held_since


class JudgeActivities:
    """Judges one judge metric of one deployment, on the router's samples (latency, errors)
    and on Prometheus ranges (series metrics)."""

    def __init__(
        self,
        provider: InfrastructureProvider,
        http: httpx.AsyncClient,
        store: JudgementStore | None,
        prometheus_url: str | None = None,
        *,
        timeout: float = HTTP_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.http = http
        self.store = store
        self.timeout = timeout
        self.clock = clock
        self.prometheus = (
            PrometheusClient(http, prometheus_url, timeout) if prometheus_url else None
        )

    @activity.defn(name=JUDGE_ACTIVITY)
    async def judge_window(self, req: JudgeWindowRequest) -> MetricValue:
        """One judgement of `req.judge`: its score as the value, the judgement beside it."""
        try:
            recording, notes = await self._record(req)
        except JudgingError as err:
            activity.logger.warning("judgement failed: %s", err)
            return MetricValue(error=str(err))
        # The tests are CPU work on up to 10,000 samples a side: off the event loop.
        result = await asyncio.to_thread(judge, request_for(req.judge, recording))
        words = "; ".join([_baseline_words(recording), *notes])
        result = result.model_copy(update={"reason": f"{result.reason}; {words}"})
        await self._save(req, result, recording)
        return MetricValue(value=result.score, judgement=result)

    # ------------------------------------------------------------------ the data

    async def _record(self, req: JudgeWindowRequest) -> tuple[Recording, list[str]]:
        now = self.clock()
        canary_window = Window(since=req.window_start, until=max(now, req.window_start + 0.001))
        mode: ResolvedBaseline = req.baseline
        notes: list[str] = []
        pinned: StoredJudgement | None = None
        if mode == "pinned":
            pinned = await self._pinned(req)
            if pinned is None:
                notes.append(
                    f"no passing judgement of {req.component} in {req.environment} to pin"
                    " the baseline to, so it is the window before the deployment"
                )
                mode = "before"
        if mode == "concurrent" and req.baseline_version == req.version:
            # A configuration-only redeploy: the router keys samples by version label, so the
            # same window would compare the version with itself and always pass. The label's
            # window before the deployment is a real baseline: the old configuration.
            notes.append(
                f"{req.version} replaces {req.baseline_version} itself (a configuration-only"
                " redeploy), so the baseline is its window before the deployment, not the"
                " same window"
            )
            mode = "before"
        if pinned is not None:
            baseline_window = pinned.recording.canary_window
        elif mode == "concurrent":
            baseline_window = canary_window
        else:
            ds = req.deployment_start
            baseline_window = Window(since=ds - req.judge.baseline_window, until=ds)
        kinds = {m.kind for m in req.judge.metrics}
        latency: LatencyData | None = None
        errors: ErrorData | None = None
        if kinds & {"latency", "errors"}:
            latency, errors = await self._router(req, canary_window, baseline_window, pinned, notes)
        series: dict[str, SeriesData] = {}
        for metric in req.judge.metrics:
            if metric.kind == "series":
                found = await self._series(req, metric, canary_window, baseline_window, pinned)
                if isinstance(found, str):
                    notes.append(found)
                else:
                    series[metric.name] = found
        recording = Recording(
            baseline_label=pinned.version if pinned is not None else req.baseline_version,
            canary_label=req.version,
            baseline=mode,
            baseline_window=baseline_window,
            canary_window=canary_window,
            pinned_from=pinned.deployment_id if pinned is not None else None,
            latency=latency,
            errors=errors,
            series=series,
        )
        return recording, notes

    async def _pinned(self, req: JudgeWindowRequest) -> StoredJudgement | None:
        if self.store is None:
            return None
        try:
            return await self.store.last_passed(
                req.component, req.environment, excluding_deployment=req.deployment_id
            )
        except (SQLAlchemyError, OSError) as err:
            raise JudgingError(f"cannot read the pinned baseline from the store: {err}") from err

    async def _router(
        self,
        req: JudgeWindowRequest,
        canary_window: Window,
        baseline_window: Window,
        pinned: StoredJudgement | None,
        notes: list[str],
    ) -> tuple[LatencyData, ErrorData]:
        admin = await self._admin(req.component, req.environment)
        canary = await self._side(admin, req.version, canary_window)
        if pinned is not None:
            rec = pinned.recording
            kept = (
                rec.errors.canary if rec.errors is not None else ErrorCounts(requests=0, errors=0)
            )
            base = _Side(kept.requests, kept.errors, rec.latency.canary if rec.latency else [])
        else:
            base = await self._side(admin, req.baseline_version, baseline_window)
            held = base.held_since
            if held is not None:
                notes.append(
                    f"the router keeps {baseline_window.until - held:.0f}s of"
                    f" {req.baseline_version}'s window, not the"
                    f" {baseline_window.until - baseline_window.since:g}s asked"
                    " (its history is 180 sample buckets): the baseline is shorter"
                )
        return (
            LatencyData(baseline=base.latencies, canary=canary.latencies),
            ErrorData(baseline=base.counts, canary=canary.counts),
        )

    async def _admin(self, component: str, environment: str) -> str:
        """The router's admin endpoint, where `/samples` is served."""
        try:
            return await router_url(
                self.provider, component, environment, "admin_endpoint", "judge by"
            )
        except NoRouter as err:
            raise JudgingError(str(err)) from err

    async def _side(self, admin: str, version: str, window: Window) -> _Side:
        try:
            found = await fetch(
                self.http, admin, version, window.since, window.until, http_timeout=self.timeout
            )
        except SamplesError as err:
            raise JudgingError(str(err)) from err
        # The seed makes a judgement of the same buckets the same judgement.
        merged = merge(found, window.since, window.until, limit=MAX_SAMPLES, seed=int(window.since))
        latencies = [min(ms / 1000.0, MAX_LATENCY_SECONDS) for ms in merged.latencies_ms]
        # The router answers an older `since` from where its history begins, and says so.
        held_since = found.since if found.since > window.since else None
        return _Side(merged.requests, merged.errors, latencies, held_since)

    async def _series(
        self,
        req: JudgeWindowRequest,
        metric: JudgeMetric,
        canary_window: Window,
        baseline_window: Window,
        pinned: StoredJudgement | None,
    ) -> SeriesData | str:
        """A series metric's data from Prometheus (judge_series), or why it has none (the
        judge then says no data; the words join the result's reason). A pinned baseline is
        the series its judgement recorded for the canary, under this metric's name."""
        if self.prometheus is None:
            return f"{metric.name}: no data, PROMETHEUS_URL is not set"
        if pinned is not None:
            # Only the canary is asked for: an empty window gives the baseline no points.
            baseline_window = Window(since=canary_window.since, until=canary_window.since)
        try:
            found = await series_pair(
                self.prometheus,
                metric,
                component=req.component,
                environment=req.environment,
                canary_version=req.version,
                canary_window=canary_window,
                baseline_version=req.baseline_version,
                baseline_window=baseline_window,
            )
        except SeriesError as err:
            raise JudgingError(str(err)) from err
        if pinned is not None:
            kept = pinned.recording.series.get(metric.name)
            found = SeriesData(baseline=kept.canary if kept else [], canary=found.canary)
        return found

    # ------------------------------------------------------------------ keeping it

    async def _save(self, req: JudgeWindowRequest, result: JudgeResult, rec: Recording) -> None:
        """Keep the judgement; a store that fails is logged, not a failed judgement (the
        rollout's decision does not depend on it)."""
        if self.store is None:
            return
        try:
            await self.store.save(
                NewJudgement(
                    deployment_id=req.deployment_id,
                    component=req.component,
                    environment=req.environment,
                    version=req.version,
                    metric=req.metric,
                    where=req.where,
                    at=datetime.now(UTC),
                    result=result,
                    recording=rec,
                )
            )
        except (SQLAlchemyError, OSError, ValueError) as err:  # ValueError: too large
            activity.logger.warning("the judgement of %s was not kept: %s", req.metric, err)


def _baseline_words(rec: Recording) -> str:
    """Where the baseline came from, in words."""
    if rec.baseline == "concurrent":
        return f"baseline {rec.baseline_label} in the same window"
    if rec.baseline == "pinned":
        return f"baseline {rec.baseline_label} pinned to deployment {rec.pinned_from}'s pass"
    seconds = rec.baseline_window.until - rec.baseline_window.since
    return f"baseline {rec.baseline_label} in the {seconds:g}s before the deployment"


__all__ = ["JUDGE_ACTIVITY", "JudgeActivities", "JudgementStore", "JudgingError"]
