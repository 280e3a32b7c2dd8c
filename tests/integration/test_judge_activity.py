"""The judging activity (`judge-window`) against a real router in front of two real demo
versions (v1 20 ms; v2 40 ms with 10% errors), with 1 s buckets and an in-memory judgement
store: each baseline mode reads the right buckets, the judgement is kept, and failures come
back as values."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
from temporalio.testing import ActivityEnvironment

from activities.analysis.judging import JudgeActivities
from activities.analysis.router_samples import fetch_merged
from activities.infrastructure.provider import InfrastructureProvider
from core.judge.data import ErrorCounts, ErrorData, LatencyData
from core.judge.recording import NewJudgement, Recording, StoredJudgement, Window
from core.judge.result import JudgeResult
from core.judge.spec import JudgeSpec, ResolvedBaseline
from core.models.analysis import JudgeWindowRequest, MetricValue
from core.models.infrastructure import TargetState
from tests.integration.test_router_samples import _send, _table, two_versions
from tests.support import wait_for, wait_for_sync

SPEC = JudgeSpec.model_validate(
    {
        "metrics": [
            {"name": "latency", "kind": "latency", "critical": True},
            {"name": "errors", "kind": "errors"},
        ]
    }
)


class MemoryStore:
    """The judgement store's protocol, in memory (core/db/judgements.py is the real one)."""

    def __init__(self, *kept: StoredJudgement) -> None:
        self.saved: list[NewJudgement] = []
        self.kept = list(kept)

    async def save(self, judgement: NewJudgement) -> None:
        self.saved = [
            j
            for j in self.saved
            if (j.deployment_id, j.where, j.metric)
            != (judgement.deployment_id, judgement.where, judgement.metric)
        ] + [judgement]

    async def last_passed(
        self, component: str, environment: str, *, excluding_deployment: str
    ) -> StoredJudgement | None:
        found = [
            j
            for j in self.kept
            if (j.component, j.environment) == (component, environment)
            and j.deployment_id != excluding_deployment
            and j.result.verdict == "pass"
        ]
        return max(found, key=lambda j: j.at, default=None)


class Provider:
    """Only `state`, as the activity reads it."""

    def __init__(self, endpoint: str | None, admin: str | None) -> None:
        self.endpoint, self.admin = endpoint, admin

    async def state(self, component: str, environment: str) -> TargetState:
        return TargetState(
            component=component,
            environment=environment,
            endpoint=self.endpoint,
            admin_endpoint=self.admin,
        )


def activities(
    http: httpx.AsyncClient, store: MemoryStore, endpoint: str | None, admin: str | None
) -> JudgeActivities:
    provider = cast(InfrastructureProvider, Provider(endpoint, admin))
    return JudgeActivities(provider, http, store, timeout=2.0)


def request(
    baseline: ResolvedBaseline, window_start: float, deployment_start: float, **spec: Any
) -> JudgeWindowRequest:
    judge = SPEC.model_copy(update=spec) if spec else SPEC
    return JudgeWindowRequest(
        component="demo",
        environment="test",
        version="v2",
        baseline_version="v1",
        baseline=baseline,
        window_start=window_start,
        deployment_start=deployment_start,
        deployment_id="dep-2",
        metric="judge",
        where="at step 2",
        judge=judge,
    )


async def judged(acts: JudgeActivities, req: JudgeWindowRequest) -> MetricValue:
    got: MetricValue = await ActivityEnvironment().run(acts.judge_window, req)
    return got


def pinned_pass() -> StoredJudgement:
    """A passing judgement of an earlier deployment: its canary, v0, had 80 requests and
    2 errors at 19 ms."""
    window = Window(since=1000.0, until=1060.0)
    recording = Recording(
        baseline_label="v-1",
        canary_label="v0",
        baseline="concurrent",
        baseline_window=window,
        canary_window=window,
        latency=LatencyData(baseline=[0.019] * 80, canary=[0.019] * 80),
        errors=ErrorData(
            baseline=ErrorCounts(requests=80, errors=2), canary=ErrorCounts(requests=80, errors=2)
        ),
    )
    return StoredJudgement(
        id=1,
        deployment_id="dep-1",
        component="demo",
        environment="test",
        version="v0",
        metric="judge",
        where="at step 2",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        result=JudgeResult(score=100, verdict="pass", metrics=[], reason="pass at score 100"),
        recording=recording,
    )


async def test_each_baseline_reads_its_own_buckets_and_the_judgement_is_kept(
    tmp_path: Path,
) -> None:
    with two_versions(tmp_path) as (url, admin, table, ports):
        async with httpx.AsyncClient(timeout=10) as http:
            # Before the deployment: v1 alone, within the 10 s `before` window.
            first = math.ceil(time.time())
            wait_for_sync(lambda: time.time() >= first, what="a fresh bucket", within=2)
            before = await _send(http, url, 60)
            assert set(before) == {("v1", 200)}
            # The deployment starts on a bucket's edge; the canary gets half the traffic.
            started = math.ceil(time.time())
            wait_for_sync(lambda: time.time() >= started, what="the next bucket", within=2)
            _table(table, ports, canary=50, generation=2)
            await wait_for(
                lambda: http.get(admin + "/status"),
                lambda r: r.json()["generation"] == 2,
                what="the 50/50 table applied",
            )
            during = await _send(http, url, 300)
            v1 = sum(n for (v, _), n in during.items() if v == "v1")
            v2 = sum(n for (v, _), n in during.items() if v == "v2")
            v2_errors = during[("v2", 500)]

            store = MemoryStore()
            acts = activities(http, store, url, admin)

            # concurrent: both versions over [started, now), the same buckets.
            got = await judged(acts, request("concurrent", started, started))
            assert got.error is None and got.judgement is not None
            assert got.judgement.verdict == "fail" and got.value == 0.0
            assert "critical metric latency fails" in got.judgement.reason
            assert "baseline v1 in the same window" in got.judgement.reason
            (kept,) = store.saved
            rec = kept.recording
            assert rec.baseline_window == rec.canary_window
            assert rec.canary_window.since == started
            assert rec.errors is not None and rec.latency is not None
            assert rec.errors.baseline == ErrorCounts(requests=v1, errors=0)
            assert rec.errors.canary == ErrorCounts(requests=v2, errors=v2_errors)
            assert (len(rec.latency.baseline), len(rec.latency.canary)) == (v1, v2)
            assert 0.018 <= sorted(rec.latency.baseline)[v1 // 2] <= 0.045  # seconds
            assert (kept.deployment_id, kept.where, kept.metric) == ("dep-2", "at step 2", "judge")
            assert kept.result == got.judgement

            # before: v1 over the 10 s before the deployment: the 60 requests, none after.
            got = await judged(acts, request("before", started, started, baseline_window=10))
            assert got.judgement is not None and got.judgement.verdict == "fail"
            assert "baseline v1 in the 10s before the deployment" in got.judgement.reason
            (kept,) = store.saved  # the same (deployment, where, metric): replaced
            rec = kept.recording
            assert rec.baseline == "before"
            assert rec.baseline_window == Window(since=started - 10, until=started)
            assert rec.errors is not None and rec.errors.baseline == ErrorCounts(
                requests=60, errors=0
            )
            assert rec.errors.canary.requests == v2

            # A window starting mid-bucket leaves that bucket out: it holds what the buckets
            # from the next second on hold, on both sides.
            got = await judged(acts, request("concurrent", started + 0.5, started))
            assert got.judgement is not None
            seen = store.saved[0].recording.errors
            assert seen is not None
            later = time.time() + 1
            for version, side in (("v2", seen.canary), ("v1", seen.baseline)):
                whole = await fetch_merged(http, admin, version, started + 1, later)
                assert side.requests == whole.requests <= v1 + v2

            # pinned: the last passing judgement of another deployment is the baseline.
            pinned = pinned_pass()
            acts = activities(http, MemoryStore(pinned), url, admin)
            got = await judged(acts, request("pinned", started, started))
            assert got.judgement is not None
            assert "pinned to deployment dep-1's pass" in got.judgement.reason
            rec = cast(MemoryStore, acts.store).saved[0].recording
            assert (rec.baseline, rec.baseline_label, rec.pinned_from) == ("pinned", "v0", "dep-1")
            assert rec.baseline_window == pinned.recording.canary_window
            assert rec.errors is not None and rec.errors.baseline == ErrorCounts(
                requests=80, errors=2
            )
            assert rec.errors.canary.requests == v2

            # pinned with nothing to pin to: the window before the deployment, said so.
            acts = activities(http, MemoryStore(), url, admin)
            got = await judged(acts, request("pinned", started, started, baseline_window=10))
            assert got.judgement is not None
            assert "no passing judgement of demo in test" in got.judgement.reason
            rec = cast(MemoryStore, acts.store).saved[0].recording
            assert rec.baseline == "before"
            assert rec.errors is not None and rec.errors.baseline.requests == 60


async def test_failures_come_back_as_values(tmp_path: Path) -> None:
    store = MemoryStore()
    async with httpx.AsyncClient(timeout=5) as http:
        nothing = activities(http, store, None, None)
        got = await judged(nothing, request("concurrent", time.time() - 5, time.time() - 5))
        assert got.judgement is None and got.value is None
        assert got.error is not None and "nothing is deployed there" in got.error

        old_router = activities(http, store, "http://127.0.0.1:1", None)
        got = await judged(old_router, request("concurrent", time.time() - 5, time.time() - 5))
        assert got.error is not None and "no admin port yet" in got.error

        gone = activities(http, store, "http://127.0.0.1:1", "http://127.0.0.1:1")
        got = await judged(gone, request("concurrent", time.time() - 5, time.time() - 5))
        assert got.error is not None and "cannot read the router's samples" in got.error

        series = SPEC.model_validate(
            {"metrics": [{"name": "queue", "kind": "series", "query": "up"}]}
        )
        got = await judged(
            gone,
            request("concurrent", time.time() - 5, time.time() - 5).model_copy(
                update={"judge": series}
            ),
        )
        # No Prometheus: the series metric has no data, and the judgement says why.
        assert got.judgement is not None and got.judgement.verdict == "fail"
        assert "queue: no data, PROMETHEUS_URL is not set" in got.judgement.reason
    assert len(store.saved) == 1  # only the judgement that was made is kept


async def test_a_redeploy_of_the_same_version_compares_with_its_window_before(
    tmp_path: Path,
) -> None:
    """A configuration-only redeploy (v1 replacing v1): `concurrent` would compare v1 with
    itself over the same buckets, so the activity takes v1's window before the deployment."""
    with two_versions(tmp_path) as (url, admin, _table_path, _ports):
        async with httpx.AsyncClient(timeout=10) as http:
            first = math.ceil(time.time())
            wait_for_sync(lambda: time.time() >= first, what="a fresh bucket", within=2)
            before = await _send(http, url, 40)
            started = math.ceil(time.time())
            wait_for_sync(lambda: time.time() >= started, what="the next bucket", within=2)
            after = await _send(http, url, 50)
            assert set(before) == set(after) == {("v1", 200)}

            store = MemoryStore()
            acts = activities(http, store, url, admin)
            same = request("concurrent", started, started, baseline_window=10).model_copy(
                update={"version": "v1"}
            )
            got = await judged(acts, same)
            assert got.error is None and got.judgement is not None
            assert "a configuration-only redeploy" in got.judgement.reason
            assert "baseline v1 in the 10s before the deployment" in got.judgement.reason
            rec = store.saved[0].recording
            assert rec.baseline == "before"
            assert rec.baseline_window == Window(since=started - 10, until=started)
            assert rec.errors is not None
            assert rec.errors.baseline == ErrorCounts(requests=40, errors=0)
            assert rec.errors.canary == ErrorCounts(requests=50, errors=0)


async def test_a_baseline_older_than_the_routers_history_is_shortened_and_says_so(
    tmp_path: Path,
) -> None:
    """With 1 s buckets the router holds 180 s: a `before` window of 300 s is answered from
    where its history begins, and the judgement says its baseline is shorter than asked."""
    with two_versions(tmp_path) as (url, admin, _table_path, _ports):
        async with httpx.AsyncClient(timeout=10) as http:
            await _send(http, url, 40)
            started = math.ceil(time.time())
            wait_for_sync(lambda: time.time() >= started, what="the next bucket", within=2)
            acts = activities(http, MemoryStore(), url, admin)
            got = await judged(acts, request("before", started, started, baseline_window=300))
            assert got.error is None and got.judgement is not None, got.error
            assert "the router keeps 180s of v1's window, not the 300s asked" in (
                got.judgement.reason
            )
