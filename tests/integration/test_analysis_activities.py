"""The measuring activity against real processes: demo instances behind the local router,
real traffic, and a real Prometheus scraping the router."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.analysis.activities import AnalysisActivities
from activities.analysis.router_metrics import builtin_value, parse, window
from activities.infrastructure.local.ports import DEFAULT_RANGE
from activities.infrastructure.local.provider import LocalProvider
from cli.load import LoadReport, run_load
from cli.processes import free_port
from core.models.analysis import MeasureRequest, MetricSpec, MetricValue, RouterCounters
from tests.integration.local_infra import demo_component, ensure
from tests.integration.prometheus_fixture import (
    PrometheusServer,
    prometheus_binary,
    running_prometheus,
)
from tests.support import wait_for

# The share of 5xx among a version's requests over the last 30 s. A version that never
# failed has no 5xx series at all, and without `or vector(0)` its share would be "no data".
ERROR_SHARE = (
    '(sum(rate(r2c_router_requests_total{version="{{version}}",code=~"5.."}[30s]))'
    " or vector(0))"
    ' / sum(rate(r2c_router_requests_total{version="{{version}}"}[30s]))'
)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def own_port_range() -> tuple[int, int]:
    """A slice of the provider's port range for one test's home.

    Each home keeps its own port registry, so test runs side by side (other homes) would all
    start allocating at the bottom of the range and race for the same ports.
    """
    low = random.randrange(DEFAULT_RANGE[0], DEFAULT_RANGE[1] - 200, 10)
    return low, low + 199


@pytest.fixture
async def provider(tmp_path: Path, http: httpx.AsyncClient) -> AsyncIterator[LocalProvider]:
    local = LocalProvider(tmp_path / "home", http, port_range=own_port_range())
    try:
        yield local
    finally:
        for component, environment in await local.targets():
            await local.retire(component, environment)


async def canary_target(provider: LocalProvider) -> str:
    """demo/dev with a good v1 and a bad v2 (half its answers are 500), 50/50; its URL."""
    component = demo_component()
    await provider.ensure_instances(component, ensure("stable", "v1", 1))
    await provider.ensure_instances(
        component, ensure("canary", "v2", 1, env_overrides={"DEMO_ERROR_RATE": "0.5"})
    )
    state = await provider.set_weights(component, "dev", {"stable": 50, "canary": 50})
    assert state.endpoint is not None
    return state.endpoint


@pytest.fixture
async def endpoint(provider: LocalProvider) -> str:
    return await canary_target(provider)


def request(
    version: str, metric: str, since: RouterCounters | None = None, **spec: Any
) -> MeasureRequest:
    return MeasureRequest(
        component="demo",
        environment="dev",
        version=version,
        metric=MetricSpec(name=metric, **spec),
        since=since,
    )


async def measure(activities: AnalysisActivities, req: MeasureRequest) -> MetricValue:
    result: MetricValue = await ActivityEnvironment().run(activities.measure, req)
    return result


def error_share(report: LoadReport, version: str) -> float:
    summary = report.by_version[version]
    return summary.failed / summary.requests


# --------------------------------------------------------------------------- built-in metrics


async def test_builtin_metrics_tell_the_bad_version_from_the_good(
    provider: LocalProvider, http: httpx.AsyncClient, endpoint: str
) -> None:
    report = await run_load(endpoint + "/", rps=100, duration=3)
    assert report.requests == 300
    activities = AnalysisActivities(provider, http, None)

    bad = await measure(activities, request("v2", "error_rate"))
    assert bad.error is None and bad.value is not None and bad.counters is not None
    # The router saw exactly what the load generator saw.
    assert bad.counters.requests == report.by_version["v2"].requests
    assert bad.value == pytest.approx(error_share(report, "v2"))
    assert 0.35 <= bad.value <= 0.65
    good = await measure(activities, request("v1", "error_rate"))
    assert good.value == 0.0

    p50 = await measure(activities, request("v2", "latency_p50_ms"))
    p99 = await measure(activities, request("v2", "latency_p99_ms"))
    assert p50.value is not None and p99.value is not None
    assert 0 < p50.value <= p99.value < 1000


async def test_a_measurement_covers_the_window_since_the_previous_one(
    provider: LocalProvider, http: httpx.AsyncClient, endpoint: str
) -> None:
    activities = AnalysisActivities(provider, http, None)
    await run_load(endpoint + "/", rps=100, duration=1)
    first = await measure(activities, request("v2", "error_rate"))
    assert first.counters is not None

    # No traffic since the previous measurement: no evidence either way.
    idle = await measure(activities, request("v2", "error_rate", since=first.counters))
    assert idle.error is None and idle.value is None
    assert idle.counters == first.counters

    report = await run_load(endpoint + "/", rps=100, duration=2)
    second = await measure(activities, request("v2", "error_rate", since=first.counters))
    assert second.counters is not None
    assert window(second.counters, first.counters).requests == report.by_version["v2"].requests
    assert second.value == pytest.approx(error_share(report, "v2"))


async def test_request_rate_is_measured_while_traffic_flows(
    provider: LocalProvider, http: httpx.AsyncClient, endpoint: str
) -> None:
    activities = AnalysisActivities(provider, http, None, rate_sample=1.0)
    load = asyncio.create_task(run_load(endpoint + "/", rps=100, duration=3))
    metrics_url = (await provider.state("demo", "dev")).metrics_url
    assert metrics_url is not None

    async def requests_seen() -> int:
        text = (await http.get(metrics_url)).text
        return parse(text).get("v2", RouterCounters()).requests

    await wait_for(requests_seen, lambda n: n > 0, what="traffic through the router")
    rate = await measure(activities, request("v2", "request_rate"))
    report = await load
    assert report.failed == report.by_version["v2"].failed  # only the bad version fails
    assert rate.error is None and rate.value is not None
    assert 25 <= rate.value <= 75  # half of 100 requests a second


async def test_an_unreachable_router_is_a_measurement_error(
    provider: LocalProvider, http: httpx.AsyncClient, endpoint: str
) -> None:
    activities = AnalysisActivities(provider, http, None)
    state = await provider.state("demo", "dev")
    assert state.router_pid is not None
    os.kill(state.router_pid, signal.SIGKILL)
    await wait_for(lambda: provider.state("demo", "dev"), lambda s: not s.router_alive)
    result = await measure(activities, request("v2", "error_rate"))
    assert result.value is None and result.counters is None
    assert result.error is not None and "cannot read the router's metrics" in result.error


async def test_a_target_with_nothing_deployed_is_a_measurement_error(
    provider: LocalProvider, http: httpx.AsyncClient
) -> None:
    result = await measure(AnalysisActivities(provider, http, None), request("v2", "error_rate"))
    assert result.error == "demo/dev has no router to measure: nothing is deployed there"


# --------------------------------------------------------------------------- Prometheus


@dataclass
class Scraped:
    """demo/dev (good v1, bad v2) with Prometheus scraping its router every second."""

    provider: LocalProvider
    http: httpx.AsyncClient
    endpoint: str
    metrics_url: str
    prometheus: PrometheusServer

    def activities(self) -> AnalysisActivities:
        return AnalysisActivities(self.provider, self.http, self.prometheus.url)

    async def scraped_total(self, version: str) -> int:
        """The requests of `version` in Prometheus's latest sample; -1 before the first."""
        promql = f'sum(r2c_router_requests_total{{version="{version}"}})'
        series = await self.prometheus.query(self.http, promql)
        return int(float(series[0]["value"][1])) if series else -1


@pytest.fixture(scope="module")
async def scraped(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scraped]:
    """Shared by the Prometheus tests: its first scrape alone takes several seconds.

    Both versions get traffic before Prometheus starts, so every series exists from its
    first sample on and rates are not distorted by series appearing mid-window.
    """
    prometheus_binary()  # before starting anything it would need
    base = tmp_path_factory.mktemp("scraped")
    async with httpx.AsyncClient() as http:
        provider = LocalProvider(base / "home", http, port_range=own_port_range())
        try:
            endpoint = await canary_target(provider)
            warm_up = await run_load(endpoint + "/", rps=100, duration=0.5)
            assert warm_up.by_version["v2"].failed > 0 and warm_up.by_version["v1"].requests > 0
            state = await provider.state("demo", "dev")
            assert state.admin_endpoint is not None and state.metrics_url is not None
            target = state.admin_endpoint.removeprefix("http://")
            async with running_prometheus(base / "prometheus", [target], http) as prometheus:
                scraped = Scraped(provider, http, endpoint, state.metrics_url, prometheus)
                await wait_for(
                    lambda: scraped.scraped_total("v2"), lambda n: n > 0, what="first sample"
                )
                yield scraped
        finally:
            await provider.retire("demo")


async def test_a_promql_metric_measures_the_error_share(scraped: Scraped) -> None:
    activities = scraped.activities()
    report = await run_load(scraped.endpoint + "/", rps=100, duration=3)
    router = parse((await scraped.http.get(scraped.metrics_url)).text)
    # Until Prometheus has scraped the final counters, the rates are still moving.
    await wait_for(
        lambda: scraped.scraped_total("v2"),
        lambda n: n == router["v2"].requests,
        what="prometheus to scrape the final counters",
    )

    bad = await measure(activities, request("v2", "error_share", query=ERROR_SHARE))
    assert bad.error is None and bad.value is not None and bad.counters is None
    assert bad.value == pytest.approx(error_share(report, "v2"), abs=0.08)
    assert 0.3 <= bad.value <= 0.7
    good = await measure(activities, request("v1", "error_share", query=ERROR_SHARE))
    assert good.value == 0.0
    idle = await measure(activities, request("v9", "error_share", query=ERROR_SHARE))
    assert idle.error is None and idle.value is None  # no traffic: no evidence

    # Prometheus's own histogram_quantile over the same counters agrees with the built-in
    # metric's interpolation.
    p99 = (
        "histogram_quantile(0.99, sum by (le) "
        '(r2c_router_request_duration_seconds_bucket{version="{{version}}"})) * 1000'
    )
    from_prometheus = await measure(activities, request("v2", "p99", query=p99))
    builtin = builtin_value("latency_p99_ms", router["v2"], None)
    assert from_prometheus.value == pytest.approx(builtin)


async def test_promql_answers_that_are_not_one_number(scraped: Scraped) -> None:
    activities = scraped.activities()
    broken = await measure(activities, request("v2", "broken", query="sum(rate(x[1m])"))
    assert broken.value is None and broken.error is not None
    assert "bad_data" in broken.error and "parse error" in broken.error

    per_code = 'sum by (code) (r2c_router_requests_total{version="{{version}}"})'
    several = await measure(activities, request("v2", "per_code", query=per_code))
    assert several.error is not None and "returns 2 series" in several.error

    absent = 'sum(r2c_router_requests_total{version="{{version}}"})'
    none = await measure(activities, request("v9", "absent", query=absent))
    assert none.error is None and none.value is None  # no series: no evidence

    scalar = await measure(activities, request("v2", "scalar", query="scalar(vector(0.25))"))
    assert scalar.value == 0.25

    ranged = await measure(activities, request("v2", "ranged", query="up[10s]"))
    assert ranged.error is not None and "range vector" in ranged.error


# --------------------------------------------------------------------------- without Prometheus


async def test_a_query_without_prometheus_url_is_a_measurement_error(
    provider: LocalProvider, http: httpx.AsyncClient
) -> None:
    activities = AnalysisActivities(provider, http, None)
    result = await measure(activities, request("v2", "error_share", query=ERROR_SHARE))
    assert result.error == "metric error_share has a query but PROMETHEUS_URL is not set"


async def test_an_unreachable_prometheus_is_a_measurement_error(
    provider: LocalProvider, http: httpx.AsyncClient
) -> None:
    activities = AnalysisActivities(provider, http, f"http://127.0.0.1:{free_port()}")
    result = await measure(activities, request("v2", "error_share", query=ERROR_SHARE))
    assert result.error is not None and result.error.startswith("cannot reach Prometheus at")


async def test_unsafe_values_never_reach_promql(
    provider: LocalProvider, http: httpx.AsyncClient
) -> None:
    activities = AnalysisActivities(provider, http, f"http://127.0.0.1:{free_port()}")
    # The request model refuses such a version; the activity must hold even if one gets by.
    sneaky = request("v2", "error_share", query=ERROR_SHARE).model_copy(
        update={"version": 'v2"} or vector(0) #'}
    )
    result = await measure(activities, sneaky)
    assert result.error is not None and "cannot be put into a PromQL query" in result.error
    unknown = await measure(activities, request("v2", "m", query='up{job="{{job}}"}'))
    assert unknown.error is not None and "unknown placeholder {{job}}" in unknown.error
