"""`slo_burn_rate`: the metric's declaration, its value from the router's counters and the
component's SLO, and a canary judged by it (time-skipping server, activities faked by name)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from activities.analysis.activities import AnalysisActivities
from activities.analysis.router_metrics import slo_burn_value
from activities.infrastructure.local.router.metrics import RouterMetrics
from activities.infrastructure.provider import InfrastructureProvider
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.db.tables import ComponentRow, utcnow
from core.models.analysis import MeasureRequest, MetricSpec, MetricValue, RouterCounters
from core.models.deployments import DeploymentState
from core.models.infrastructure import TargetState
from core.settings import Settings
from tests.unit.deployment_fakes import FakeInfra, Run, deployment_input, stable_v1, time_skipping

SLO = {
    "availability": {"objective": 0.99, "window": "30d"},
    "latency": {"objective": 0.9, "threshold": "300ms", "window": "7d"},
}


def canary(metric: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "canary",
        "steps": [
            {"set_weight": 20},
            {"analysis": {"metrics": [{"interval": "10s", "count": 3} | metric]}},
            {"set_weight": 100},
        ],
    }


BURN = {"name": "slo_burn_rate", "failure_condition": "result > 10"}


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async for environment in time_skipping():
        yield environment


# ---------------------------------------------------------------- the declaration


def test_the_metric_names_an_slo_and_defaults_to_availability() -> None:
    assert MetricSpec.model_validate(BURN).slo_name == "availability"
    assert MetricSpec.model_validate(BURN | {"slo": "latency"}).slo_name == "latency"
    assert MetricSpec.model_validate({"name": "error_rate"}).slo_name is None
    assert MetricSpec.model_validate(BURN).judges_requests  # min_requests applies


@pytest.mark.parametrize(
    "metric",
    [
        {"name": "error_rate", "slo": "availability"},
        {"name": "slo_burn_rate", "slo": "throughput"},
        {"name": "mine", "query": "up", "slo": "latency"},
    ],
)
def test_slo_belongs_to_slo_burn_rate_only(metric: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MetricSpec.model_validate(metric)


def test_burn_value_figures() -> None:
    window = RouterCounters(requests=200, errors=4, buckets=[(0.25, 150), (0.5, 190)])
    # 2% 5xx against 0.99 -> 2; 50 of 200 slower than 250ms against 0.9 -> 2.5.
    assert slo_burn_value(window, "availability", 0.99, None) == pytest.approx(2.0)
    assert slo_burn_value(window, "latency", 0.9, 0.25) == pytest.approx(2.5)
    assert slo_burn_value(RouterCounters(), "availability", 0.99, None) is None


# ---------------------------------------------------------------- the measurement


class OneRouter:
    """A provider that knows one router, whose metrics the test's transport serves."""

    async def state(self, component: str, environment: str) -> TargetState:
        return TargetState(
            component=component,
            environment=environment,
            endpoint="http://router",
            metrics_url="http://router-admin/metrics",
        )


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    settings = Settings(home=tmp_path / "home", postgres_url=None)
    await asyncio.to_thread(upgrade, settings)
    db = make_engine(settings)
    now = utcnow()
    async with sessions(db)() as session:
        for name, slo in (("shop", SLO), ("plain", None)):
            session.add(
                ComponentRow(
                    id=str(uuid.uuid4()),
                    name=name,
                    runtime={"command": ["x", "{port}"]},
                    slo=slo,
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.commit()
    yield db
    await db.dispose()


async def _measure(engine: AsyncEngine, router: RouterMetrics, req: MeasureRequest) -> MetricValue:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=router.render())

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        acts = AnalysisActivities(
            cast(InfrastructureProvider, OneRouter()), http, None, sessions=sessions(engine)
        )
        return await acts.measure(req)


async def test_the_activity_judges_the_new_versions_window_by_the_declared_slo(
    engine: AsyncEngine,
) -> None:
    router = RouterMetrics("shop", "prod")
    for _ in range(50):
        router.observe("v2", 200, 0.01)
    spec = MetricSpec.model_validate(BURN)
    base = MeasureRequest(component="shop", environment="prod", version="v2", metric=spec)
    start = await _measure(engine, router, base.model_copy(update={"baseline": True}))
    # In the window: 100 requests of v2, 3 of them 5xx, 20 slower than 250ms; v1 is ignored.
    for i in range(100):
        router.observe("v2", 503 if i < 3 else 200, 0.4 if i < 20 else 0.01)
        router.observe("v1", 500, 0.01)
    req = base.model_copy(update={"since": start.counters})
    got = await _measure(engine, router, req)
    assert got.requests == 100 and got.value == pytest.approx(0.03 / 0.01)
    latency = req.model_copy(
        update={"metric": MetricSpec.model_validate(BURN | {"slo": "latency"})}
    )
    got = await _measure(engine, router, latency)
    assert got.value == pytest.approx(0.2 / 0.1)


async def test_an_slo_that_went_away_is_a_measurement_error(engine: AsyncEngine) -> None:
    router = RouterMetrics("plain", "prod")
    req = MeasureRequest(
        component="plain", environment="prod", version="v2", metric=MetricSpec.model_validate(BURN)
    )
    got = await _measure(engine, router, req)
    assert got.value is None and "plain declares no availability SLO" in (got.error or "")


# ---------------------------------------------------------------- a canary judged by it


def burning(errors_per_100: int) -> Any:
    """The new version gets 100 requests a measurement, `errors_per_100` of them 5xx; the
    value is what the measuring activity computes against an objective of 0.99."""

    def script(infra: FakeInfra, req: MeasureRequest) -> MetricValue:
        assert req.metric.slo_name == "availability"
        base = req.since or RouterCounters()
        window = RouterCounters(requests=100, errors=errors_per_100)
        counters = RouterCounters(requests=base.requests + 100, errors=base.errors + errors_per_100)
        value = slo_burn_value(window, "availability", 0.99, None)
        return MetricValue(value=value, requests=100, counters=counters)

    return script


async def test_a_canary_burning_the_budget_fast_rolls_back(env: WorkflowEnvironment) -> None:
    run = Run(env.client, stable_v1(), env)
    run.infra.script = burning(20)  # 20% 5xx: burning 20 times the allowed rate
    async with run.worker():
        status = await (await run.start(deployment_input(canary(BURN)))).result()
    assert status.state is DeploymentState.ROLLED_BACK
    assert "slo_burn_rate 20" in (status.reason or "")
    assert run.infra.serving() == {"blue": "v1"} and run.infra.versions() == {"blue": "v1"}


async def test_a_canary_within_its_budget_succeeds(env: WorkflowEnvironment) -> None:
    run = Run(env.client, stable_v1(), env)
    run.infra.script = burning(1)  # 1%: exactly the budget's pace, far below 10
    async with run.worker():
        status = await (await run.start(deployment_input(canary(BURN)))).result()
    assert status.state is DeploymentState.SUCCEEDED
    assert [m.value for m in status.measurements] == [pytest.approx(1.0)] * 3
    assert set(run.infra.serving().values()) == {"v2"}
