"""The sampling activity: it reads the routers of running targets whose component declares
SLOs, keeps what it could read, and names what it could not."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.infrastructure.local.router.metrics import RouterMetrics
from activities.infrastructure.provider import InfrastructureProvider
from activities.slo import SloActivities
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.db.slo_tables import SloCursorRow
from core.db.tables import ComponentRow, InstanceRow, utcnow
from core.models.health import TargetQuery
from core.models.infrastructure import TargetState
from core.settings import Settings

SLO = {"availability": {"objective": 0.99}}


class Routers:
    """A provider whose routers' metrics the test's transport serves: `shop` in `dev` and
    `prod`; `prod` has no admin port."""

    async def state(self, component: str, environment: str) -> TargetState:
        url = f"http://{component}-{environment}/metrics" if environment == "dev" else None
        return TargetState(component=component, environment=environment, metrics_url=url)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    settings = Settings(home=tmp_path / "home", postgres_url=None)
    await asyncio.to_thread(upgrade, settings)
    db = make_engine(settings)
    now = utcnow()
    async with sessions(db)() as session:
        for name, slo in (("shop", SLO), ("plain", None)):
            component_id = str(uuid.uuid4())
            session.add(
                ComponentRow(
                    id=component_id,
                    name=name,
                    runtime={"command": ["x", "{port}"]},
                    slo=slo,
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.flush()
            for env in ("dev", "prod"):
                for n in (1, 2):  # two instances: still one reading per target
                    session.add(
                        InstanceRow(
                            id=f"{name}.{env}.stable.{n}",
                            component_id=component_id,
                            environment=env,
                            version="v1",
                            slot="stable",
                            url="http://x",
                            state="running",
                            created_at=now,
                            updated_at=now,
                        )
                    )
        await session.commit()
    yield db
    await db.dispose()


async def test_reads_each_target_with_slos_once_and_names_what_it_could_not(
    engine: AsyncEngine,
) -> None:
    router = RouterMetrics("shop", "dev")
    router.observe("v1", 200, 0.01)
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, text=router.render())

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        acts = SloActivities(
            sessions(engine), http, cast(InfrastructureProvider, Routers()), min_seconds=0
        )
        result = await acts.sample_slo_counters(TargetQuery())
    assert asked == ["http://shop-dev/metrics"]  # `plain` declares no SLO: not read
    assert (result.targets, result.kept) == (2, 1)
    assert len(result.problems) == 1 and result.problems[0].startswith("shop/prod: ")
    async with sessions(engine)() as session:
        cursors = await session.scalar(select(func.count()).select_from(SloCursorRow))
    assert cursors == 1


async def test_a_router_that_does_not_answer_is_a_problem_not_a_failure(
    engine: AsyncEngine,
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        acts = SloActivities(
            sessions(engine), http, cast(InfrastructureProvider, Routers()), min_seconds=0
        )
        result = await acts.sample_slo_counters(TargetQuery(environment="dev"))
    assert (result.targets, result.kept) == (1, 0)
    assert result.problems == ["shop/dev: connection refused"]
