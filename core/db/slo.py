"""Store access for SLOs: readings of the routers' counters become samples, and samples become
error budgets.

A reading is kept only when `min_seconds` have passed since the last kept one (the scheduled
health check may run every few seconds; a 90-day window at one sample a minute is 130,000
rows a target at most), and samples older than the component's longest window are pruned at
each reading. The figures of a window are SQL sums, so the API and the scrape read a few
aggregate rows whatever the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.slo_tables import SloCursorRow, SloSampleRow
from core.db.tables import ComponentRow
from core.models.analysis import RouterCounters
from core.models.slo import (
    BURN_RATE_WINDOW_SECONDS,
    SloName,
    SloSpec,
    SloStatus,
    bucket_microseconds,
    burn_rate,
    error_budget_remaining,
    increase,
)

SPACING_SLACK = 0.9


def spec_of(stored: dict[str, Any] | None) -> SloSpec | None:
    """A component's declared SLOs from its stored column (None: it declares none)."""
    return None if not stored else SloSpec.model_validate(stored)


def _latency_bucket(spec: SloSpec) -> float | None:
    return None if spec.latency is None else spec.latency.bucket


async def record_reading(
    session: AsyncSession,
    component_id: str,
    environment: str,
    at: datetime,
    counters: dict[str, RouterCounters],
    spec: SloSpec,
    *,
    min_seconds: float,
) -> bool:
    """Keep a reading of a target's router (in the caller's transaction): the increase since
    the last kept reading becomes a sample, the reading the new cursor. False when the last
    reading is younger than `min_seconds` or newer than `at` (a late retry): nothing changes."""
    cursor = await session.get(SloCursorRow, (component_id, environment))
    # Rounds scheduled every `min_seconds` land a little early or late: a tenth of slack keeps
    # every one of them rather than every other.
    if cursor is not None and (at - cursor.at).total_seconds() < min_seconds * SPACING_SLACK:
        return False
    before = None
    # Requests since a reading older than the shortest window cannot be placed in it (the
    # health check was stopped, or the SLOs declared anew): only the cursor moves.
    if cursor is not None and (at - cursor.at).total_seconds() <= spec.shortest_window:
        before = {v: RouterCounters.model_validate(c) for v, c in cursor.counters.items()}
    bucket = _latency_bucket(spec)
    added = increase(before, counters, bucket)
    if before is not None:
        session.add(
            SloSampleRow(
                component_id=component_id,
                environment=environment,
                at=at,
                requests=added.requests,
                errors=added.errors,
                latency_bucket_us=None if bucket is None else bucket_microseconds(bucket),
                latency_good=added.latency_good,
            )
        )
    stored = {v: c.model_dump(mode="json") for v, c in counters.items()}
    if cursor is None:
        session.add(
            SloCursorRow(component_id=component_id, environment=environment, at=at, counters=stored)
        )
    else:
        cursor.at, cursor.counters = at, stored
    await session.execute(
        delete(SloSampleRow).where(
            SloSampleRow.component_id == component_id,
            SloSampleRow.at < at - timedelta(seconds=spec.longest_window),
        )
    )
    await session.flush()
    return True


# --------------------------------------------------------------------------- budgets


def totals_query(component_id: str, since: datetime, bucket_us: int | None) -> Select[Any]:
    """Per environment, since `since`: requests, errors, and the requests judged at the
    latency bucket `bucket_us` with those answered within it."""
    judged = SloSampleRow.latency_bucket_us == (bucket_us if bucket_us is not None else -1)
    return (
        select(
            SloSampleRow.environment,
            func.coalesce(func.sum(SloSampleRow.requests), 0),
            func.coalesce(func.sum(SloSampleRow.errors), 0),
            func.coalesce(func.sum(case((judged, SloSampleRow.requests), else_=0)), 0),
            func.coalesce(func.sum(case((judged, SloSampleRow.latency_good), else_=0)), 0),
        )
        .where(SloSampleRow.component_id == component_id, SloSampleRow.at > since)
        .group_by(SloSampleRow.environment)
        .order_by(SloSampleRow.environment)
    )


Totals = dict[str, tuple[int, int, int, int]]


def _totals(rows: Sequence[Any]) -> Totals:
    return {env: (int(r), int(e), int(lr), int(lg)) for env, r, e, lr, lg in rows}


def _good_total(name: SloName, figures: tuple[int, int, int, int]) -> tuple[int, int]:
    requests, errors, judged, within = figures
    if name == "availability":
        return requests - errors, requests
    return within, judged


def _windows(spec: SloSpec) -> list[float]:
    windows = {s.window for s in (spec.availability, spec.latency) if s is not None}
    return sorted(windows | {BURN_RATE_WINDOW_SECONDS})


def queries(component_id: str, spec: SloSpec, now: datetime) -> dict[float, Select[Any]]:
    """The queries `assemble` needs: one per distinct window (the burn rate's hour included)."""
    bucket = _latency_bucket(spec)
    bucket_us = None if bucket is None else bucket_microseconds(bucket)
    return {
        w: totals_query(component_id, now - timedelta(seconds=w), bucket_us) for w in _windows(spec)
    }


def assemble(spec: SloSpec, answers: dict[float, Totals]) -> list[SloStatus]:
    """Every declared SLO in every environment that has samples in its window."""
    out: list[SloStatus] = []
    hour = answers.get(BURN_RATE_WINDOW_SECONDS, {})
    for name in spec.declared():
        slo = spec.availability if name == "availability" else spec.latency
        assert slo is not None
        threshold = note = None
        if spec.latency is not None and name == "latency":
            threshold = spec.latency.bucket
            if abs(threshold - spec.latency.threshold) > 1e-9:
                note = (
                    f"threshold {spec.latency.threshold:g}s is judged at the router's bucket "
                    f"{threshold:g}s, the largest at or below it"
                )
        for environment, figures in answers.get(slo.window, {}).items():
            good, total = _good_total(name, figures)
            recent = hour.get(environment)
            burn = None
            if recent is not None:
                recent_good, recent_total = _good_total(name, recent)
                burn = burn_rate(recent_total - recent_good, recent_total, slo.objective)
            out.append(
                SloStatus(
                    slo=name,
                    environment=environment,
                    objective=slo.objective,
                    window_seconds=slo.window,
                    threshold_seconds=threshold,
                    note=note,
                    good=good,
                    total=total,
                    error_budget_remaining=error_budget_remaining(
                        total - good, total, slo.objective
                    ),
                    burn_rate_1h=burn,
                )
            )
    return out


async def statuses(
    session: AsyncSession, component_id: str, spec: SloSpec, now: datetime
) -> list[SloStatus]:
    """The component's SLOs per environment, from the samples (the API's read)."""
    answers = {
        w: _totals((await session.execute(q)).all())
        for w, q in queries(component_id, spec, now).items()
    }
    return assemble(spec, answers)


def statuses_sync(
    conn: Connection, component_id: str, spec: SloSpec, now: datetime
) -> list[SloStatus]:
    """The same read on a synchronous connection (the metrics scrape)."""
    answers = {
        w: _totals(conn.execute(q).all()) for w, q in queries(component_id, spec, now).items()
    }
    return assemble(spec, answers)


def components_query() -> Select[Any]:
    """Every component's id, name and SLOs; those without (None, or JSON null, which a JSON
    column may store for None) are left to `spec_of`'s caller to skip."""
    return select(ComponentRow.id, ComponentRow.name, ComponentRow.slo).order_by(ComponentRow.name)
