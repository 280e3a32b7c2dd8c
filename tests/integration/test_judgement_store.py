"""The judgement store on the real store (SQLite, or PostgreSQL in its pass): one judgement per
(deployment, where, metric), the pinned baseline, the bound per target, the compressed
recording, and saves that race."""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.db.engine import make_engine, sessions
from core.db.judgements import (
    MAX_RECORDING_JSON_BYTES,
    RecordingTooLargeError,
    SqlJudgementStore,
    decompress,
)
from core.db.judgements_tables import JudgementRow
from core.db.migrate import upgrade
from core.judge import ErrorData, JudgeResult, LatencyData
from core.judge.recording import NewJudgement, Recording, Window
from core.judge.result import Verdict
from core.settings import Settings

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def recording_of(
    baseline: list[float],
    canary: list[float],
    *,
    errors: tuple[int, int, int, int] | None = None,
) -> Recording:
    """A canary's recording: both sides' latencies and, if given, (baseline requests, errors,
    canary requests, errors)."""
    counts = None
    if errors is not None:
        counts = ErrorData.model_validate(
            {
                "baseline": {"requests": errors[0], "errors": errors[1]},
                "canary": {"requests": errors[2], "errors": errors[3]},
            }
        )
    return Recording(
        baseline_label="v1",
        canary_label="v2",
        baseline="concurrent",
        baseline_window=Window(since=1_000.0, until=1_060.0),
        canary_window=Window(since=1_000.0, until=1_060.0),
        latency=LatencyData(baseline=baseline, canary=canary),
        errors=counts,
    )


def judgement_of(
    deployment_id: str,
    *,
    at: datetime = T0,
    verdict: Verdict = "pass",
    score: float = 100.0,
    where: str = "at step 1",
    metric: str = "judge",
    component: str = "demo",
    environment: str = "staging",
    recording: Recording | None = None,
) -> NewJudgement:
    return NewJudgement(
        deployment_id=deployment_id,
        component=component,
        environment=environment,
        version="v2",
        metric=metric,
        where=where,
        at=at,
        result=JudgeResult(score=score, verdict=verdict, metrics=[], reason=f"{verdict} at test"),
        recording=recording or recording_of([0.02] * 20, [0.021] * 20),
    )


@pytest.fixture
async def settings(make_settings: Callable[..., Settings]) -> Settings:
    made = make_settings()
    await asyncio.to_thread(upgrade, made)
    return made


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[SqlJudgementStore]:
    engine = make_engine(settings)
    try:
        yield SqlJudgementStore(sessions(engine))
    finally:
        await engine.dispose()


async def test_a_later_measurement_of_the_same_metric_replaces_the_earlier_one(
    store: SqlJudgementStore,
) -> None:
    await store.save(judgement_of("d1", at=T0, verdict="fail", score=0))
    await store.save(judgement_of("d1", at=T0 + timedelta(minutes=1), verdict="pass"))
    # Another place of the analysis, and another metric: kept beside it.
    await store.save(judgement_of("d1", at=T0 + timedelta(minutes=2), where="at step 2"))
    await store.save(judgement_of("d1", at=T0 + timedelta(minutes=3), metric="judge_errors"))
    # A retried activity's older measurement does not replace the newer one.
    await store.save(judgement_of("d1", at=T0 - timedelta(minutes=5), verdict="fail", score=0))

    kept = await store.of_deployment("d1")
    assert [(j.where, j.metric, j.result.verdict) for j in kept] == [
        ("at step 1", "judge", "pass"),
        ("at step 2", "judge", "pass"),
        ("at step 1", "judge_errors", "pass"),
    ]
    assert kept[0].at == T0 + timedelta(minutes=1)
    assert [j.at for j in kept] == sorted(j.at for j in kept)
    assert await store.of_deployment("d1", metric="judge_errors") == [kept[2]]
    assert await store.of_deployment("d1", newest=1) == [kept[2]]
    assert await store.count_of_deployment("d1") == 3
    assert await store.metrics_of_deployment("d1") == ["judge", "judge_errors"]
    assert await store.of_deployment("nothing-here") == []


async def test_last_passed_is_the_newest_pass_of_the_target_from_another_deployment(
    store: SqlJudgementStore,
) -> None:
    await store.save(judgement_of("d1", at=T0, verdict="pass"))
    await store.save(judgement_of("d2", at=T0 + timedelta(minutes=1), verdict="pass"))
    await store.save(
        judgement_of("d2", at=T0 + timedelta(minutes=2), verdict="warning", where="at step 2")
    )
    await store.save(judgement_of("d3", at=T0 + timedelta(minutes=3), verdict="fail", score=0))
    await store.save(judgement_of("d4", at=T0 + timedelta(minutes=4), environment="production"))

    # d3 (the deployment being judged) failed; the newest pass before it is d2's.
    found = await store.last_passed("demo", "staging", excluding_deployment="d3")
    assert found is not None and (found.deployment_id, found.where) == ("d2", "at step 1")
    # d2 itself never takes its own judgement as its baseline.
    found = await store.last_passed("demo", "staging", excluding_deployment="d2")
    assert found is not None and found.deployment_id == "d1"
    assert found.recording == judgement_of("d1").recording
    assert await store.last_passed("web", "staging", excluding_deployment="d3") is None


async def test_the_oldest_judgements_of_a_target_go_beyond_the_bound(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        store = SqlJudgementStore(sessions(engine), keep=3)
        await store.save(judgement_of("other", environment="production", at=T0))
        for n in range(5):
            await store.save(judgement_of(f"d{n}", at=T0 + timedelta(minutes=n)))
        async with sessions(engine)() as session:
            rows = (await session.execute(select(JudgementRow))).scalars().all()
        kept = sorted((r.environment, r.deployment_id) for r in rows)
        # The newest three of demo in staging; production's one is another target's.
        assert kept == [
            ("production", "other"),
            ("staging", "d2"),
            ("staging", "d3"),
            ("staging", "d4"),
        ]
    finally:
        await engine.dispose()


async def test_ten_thousand_samples_a_side_come_back_whole_from_a_compressed_row(
    store: SqlJudgementStore, settings: Settings
) -> None:
    draw = random.Random(16)
    baseline = [draw.lognormvariate(-3.9, 0.25) for _ in range(10_000)]
    canary = [draw.lognormvariate(-3.8, 0.25) for _ in range(10_000)]
    recording = recording_of(baseline, canary, errors=(40_000, 3, 10_000, 2))
    await store.save(judgement_of("big", recording=recording))

    (back,) = await store.of_deployment("big")
    assert back.recording == recording  # every float to the last bit
    engine = make_engine(settings)
    try:
        async with sessions(engine)() as session:
            packed = (await session.execute(select(JudgementRow.recording))).scalar_one()
    finally:
        await engine.dispose()
    plain = recording.model_dump_json().encode()
    assert zlib.decompress(packed) == plain
    assert len(packed) < len(plain) * 0.6, (len(packed), len(plain))


def test_a_row_that_would_inflate_beyond_the_bound_is_refused() -> None:
    bomb = zlib.compress(b" " * (MAX_RECORDING_JSON_BYTES + 1), 9)
    assert len(bomb) < 100_000
    with pytest.raises(RecordingTooLargeError, match="inflates beyond"):
        decompress(bomb)


async def test_saves_that_race_on_the_same_key_all_succeed_and_the_newest_stays(
    store: SqlJudgementStore,
) -> None:
    racing = [
        judgement_of("raced", at=T0 + timedelta(seconds=n), score=float(n), verdict="fail")
        for n in range(8)
    ]
    others = [judgement_of("raced", at=T0, where=f"at step {n + 2}") for n in range(4)]
    order = [*racing, *others]
    random.Random(7).shuffle(order)
    await asyncio.gather(*(store.save(j) for j in order))

    kept = await store.of_deployment("raced")
    assert len(kept) == 5
    (step1,) = [j for j in kept if j.where == "at step 1"]
    assert (step1.at, step1.result.score) == (T0 + timedelta(seconds=7), 7.0)
