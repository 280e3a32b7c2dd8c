"""The SLO store on SQLite: readings become samples (restarts, spacing, pruning), samples become
budgets, and the scrape serves them under the names the alert rules use."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.slo_metrics import watch_slos
from core.db import slo as store
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.db.slo_tables import SloSampleRow
from core.db.tables import ComponentRow, utcnow
from core.models.analysis import RouterCounters
from core.models.slo import SloSpec
from core.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = SloSpec.model_validate(
    {
        "availability": {"objective": 0.999, "window": "1d"},
        "latency": {"objective": 0.99, "threshold": "300ms", "window": "2h"},
    }
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", postgres_url=None)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(upgrade, settings)
    db = make_engine(settings)
    yield db
    await db.dispose()


async def _component(engine: AsyncEngine, spec: SloSpec | None = SPEC) -> str:
    component_id = str(uuid.uuid4())
    async with sessions(engine)() as session:
        session.add(
            ComponentRow(
                id=component_id,
                name="shop",
                runtime={"command": ["x", "{port}"]},
                slo=None if spec is None else spec.model_dump(mode="json"),
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        await session.commit()
    return component_id


def _c(requests: int, errors: int, fast: int) -> dict[str, RouterCounters]:
    return {"v1": RouterCounters(requests=requests, errors=errors, buckets=[(0.25, fast)])}


async def _read(
    engine: AsyncEngine, cid: str, at: datetime, counters: dict[str, RouterCounters]
) -> bool:
    async with sessions(engine)() as session:
        kept = await store.record_reading(session, cid, "prod", at, counters, SPEC, min_seconds=30)
        await session.commit()
    return kept


async def _figures(
    engine: AsyncEngine, cid: str, now: datetime
) -> dict[str, tuple[int, int, float | None, float | None]]:
    async with sessions(engine)() as session:
        found = await store.statuses(session, cid, SPEC, now)
    return {s.slo: (s.good, s.total, s.error_budget_remaining, s.burn_rate_1h) for s in found}


async def _readings(engine: AsyncEngine, cid: str) -> None:
    # The first reading only sets the cursor: its counts may be from before the window.
    assert await _read(engine, cid, T0, _c(100, 0, 100))
    # +1000 requests, 1 of them a 5xx, 990 within 250ms.
    assert await _read(engine, cid, T0 + timedelta(seconds=60), _c(1100, 1, 1090))
    # The router restarted: its counters start again, all 1000 requests are new.
    assert await _read(engine, cid, T0 + timedelta(seconds=120), _c(1000, 0, 995))
    # Too soon after the last kept reading: nothing changes (30 s apart, with a tenth of
    # slack for rounds that land early: 27 s is enough, 26 s is not).
    assert not await _read(engine, cid, T0 + timedelta(seconds=146), _c(5000, 5000, 0))
    assert not await _read(engine, cid, T0 + timedelta(seconds=10), _c(5000, 5000, 0))  # late


async def test_budgets_from_readings_with_a_restart(engine: AsyncEngine) -> None:
    cid = await _component(engine)
    await _readings(engine, cid)
    figures = await _figures(engine, cid, T0 + timedelta(seconds=121))
    # Availability: 1 bad in 2000 against 0.999 -> half the budget left, burning at 0.5.
    good, total, remaining, burn = figures["availability"]
    assert (good, total) == (1999, 2000)
    assert remaining == pytest.approx(0.5) and burn == pytest.approx(0.5)
    # Latency: 15 slower than 250ms in 2000 against 0.99 -> a quarter left.
    good, total, remaining, burn = figures["latency"]
    assert (good, total) == (1985, 2000)
    assert remaining == pytest.approx(0.25) and burn == pytest.approx(0.75)


async def test_windows_and_pruning(engine: AsyncEngine) -> None:
    cid = await _component(engine)
    await _readings(engine, cid)
    # Three hours on, the latency window (2h) holds nothing; availability (1d) still all.
    later = await _figures(engine, cid, T0 + timedelta(hours=3))
    assert set(later) == {"availability"}
    assert later["availability"][:2] == (1999, 2000) and later["availability"][3] is None
    # Readings past the longest window prune the older samples (the first one, a day after
    # the last, only moves the cursor: see the gap test below).
    assert await _read(engine, cid, T0 + timedelta(days=1, seconds=100), _c(1000, 0, 995))
    assert await _read(engine, cid, T0 + timedelta(days=1, seconds=200), _c(1010, 0, 1005))
    async with sessions(engine)() as session:
        kept = await session.scalar(select(func.count()).select_from(SloSampleRow))
    assert kept == 1
    now = await _figures(engine, cid, T0 + timedelta(days=1, seconds=201))
    assert now["availability"] == (10, 10, 1.0, 0.0)


async def test_no_traffic_is_no_verdict(engine: AsyncEngine) -> None:
    cid = await _component(engine)
    assert await _read(engine, cid, T0, _c(0, 0, 0))
    assert await _read(engine, cid, T0 + timedelta(seconds=60), _c(0, 0, 0))
    figures = await _figures(engine, cid, T0 + timedelta(seconds=61))
    assert figures["availability"] == (0, 0, None, None)


async def test_the_scrape_serves_the_families_the_alerts_use(
    engine: AsyncEngine, settings: Settings
) -> None:
    cid = await _component(engine)
    await _readings(engine, cid)
    registry = CollectorRegistry()
    collector = watch_slos(settings, registry)
    collector._now = lambda: T0 + timedelta(seconds=121)
    try:
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    labels = 'component="shop",environment="prod"'
    assert f'r2c_slo_objective{{{labels},slo="availability"}} 0.999' in text
    assert f'r2c_slo_objective{{{labels},slo="latency"}} 0.99' in text
    assert f'r2c_slo_error_budget_remaining_ratio{{{labels},slo="availability"}} 0.5' in text
    assert f'r2c_slo_error_budget_remaining_ratio{{{labels},slo="latency"}} 0.25' in text
    assert f"r2c_slo_latency_threshold_seconds{{{labels}}} 0.25" in text


async def test_a_store_that_does_not_answer_leaves_the_families_empty(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "nowhere", postgres_url="postgresql://x@127.0.0.1:1/x")
    registry = CollectorRegistry()
    collector = watch_slos(settings, registry)
    try:
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    assert "# TYPE r2c_slo_objective gauge" in text
    assert "r2c_slo_objective{" not in text


async def test_a_reading_after_a_gap_longer_than_the_window_counts_nothing(
    engine: AsyncEngine,
) -> None:
    cid = await _component(engine)
    assert await _read(engine, cid, T0, _c(100, 0, 100))
    # Three hours later (the latency window is 2h): those 900 requests cannot be placed.
    assert await _read(engine, cid, T0 + timedelta(hours=3), _c(1000, 500, 0))
    assert await _read(engine, cid, T0 + timedelta(hours=3, minutes=1), _c(1010, 500, 10))
    figures = await _figures(engine, cid, T0 + timedelta(hours=3, minutes=2))
    assert figures["availability"][:3] == (10, 10, 1.0)


async def test_a_round_landing_a_little_early_is_kept(engine: AsyncEngine) -> None:
    cid = await _component(engine)
    assert await _read(engine, cid, T0, _c(0, 0, 0))
    assert await _read(engine, cid, T0 + timedelta(seconds=27), _c(10, 0, 10))
    assert (await _figures(engine, cid, T0 + timedelta(seconds=28)))["availability"][1] == 10
