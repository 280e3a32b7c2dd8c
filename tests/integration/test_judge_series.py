"""Series metrics against a real Prometheus scraping a target the test serves, and the judge's
verdict on what they read.

The target exposes a gauge per version that moves at every scrape: v1 and v3 read the same
values (100..104), v2 twice as much (200..204), so a canary v2 against a baseline v1 must fail
and v3 against v1 must pass.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from activities.analysis.judge_series import SeriesError, series_pair
from activities.analysis.prometheus import PrometheusClient
from cli.processes import free_port
from core.judge.config import JudgeConfig, JudgeMetric
from core.judge.data import JudgeRequest, SeriesData
from core.judge.judge import judge
from core.judge.recording import Window
from tests.integration.prometheus_fixture import (
    PrometheusServer,
    prometheus_binary,
    running_prometheus,
)
from tests.support import wait_for

GAUGE = "r2c_test_queue_depth"
QUERY = (
    f'avg({GAUGE}{{version="{{{{version}}}}",app="{{{{component}}}}",env="{{{{environment}}}}"}})'
)
LEVEL = {"v1": 100, "v2": 200, "v3": 100}
SCRAPES = 15  # each side needs min_samples (10) points


class MovingGauge(Collector):
    """Every scrape reads the next value of each version's cycle: LEVEL + 0, 1, ..., 4."""

    def __init__(self) -> None:
        self.scrapes = 0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.scrapes += 1
        family = GaugeMetricFamily(GAUGE, "a queue's depth", labels=["version", "app", "env"])
        for version, level in LEVEL.items():
            family.add_metric([version, "shop", "prod"], level + self.scrapes % 5)
        yield family


@dataclass
class Scraped:
    prometheus: PrometheusServer
    client: PrometheusClient
    window: Window  # SCRAPES scrapes of every version, from the first on

    async def pair(
        self, query: str, canary: str, baseline: str = "v1", window: Window | None = None
    ) -> SeriesData:
        return await series_pair(
            self.client,
            JudgeMetric(name="queue", kind="series", query=query),
            component="shop",
            environment="prod",
            canary_version=canary,
            canary_window=window or self.window,
            baseline_version=baseline,
            baseline_window=window or self.window,
        )


@pytest.fixture(scope="module")
async def scraped(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scraped]:
    """One Prometheus for the module: its first scrapes take a while."""
    prometheus_binary()
    base: Path = tmp_path_factory.mktemp("series")
    registry = CollectorRegistry()
    registry.register(MovingGauge())
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        async with (
            httpx.AsyncClient(timeout=10) as http,
            running_prometheus(base / "prometheus", [f"127.0.0.1:{port}"], http) as prom,
        ):
            since = time.time()
            count = f'count_over_time({GAUGE}{{version="v1"}}[10m])'
            await wait_for(
                lambda: prom.query(http, count),
                lambda result: bool(result) and float(result[0]["value"][1]) >= SCRAPES + 1,
                what=f"{SCRAPES + 1} scrapes",
                within=60,
                every=0.5,
            )
            window = Window(since=since, until=time.time())
            yield Scraped(prom, PrometheusClient(http, prom.url), window)
    finally:
        server.shutdown()
        server.server_close()


def verdict(data: SeriesData, **metric: object) -> tuple[str, str]:
    """The judge's verdict and reason on `data` as the only metric, `queue`."""
    config = JudgeConfig.model_validate(
        {"metrics": [{"name": "queue", "kind": "series", "query": QUERY, **metric}]}
    )
    result = judge(JudgeRequest(config=config, data={"queue": data}))
    return result.verdict, result.metrics[0].reason


async def test_each_side_reads_its_own_versions_series(scraped: Scraped) -> None:
    data = await scraped.pair(QUERY, canary="v2")
    assert len(data.baseline) >= SCRAPES and len(data.canary) == len(data.baseline)
    assert set(data.baseline) <= {100.0, 101.0, 102.0, 103.0, 104.0}
    assert set(data.canary) <= {200.0, 201.0, 202.0, 203.0, 204.0}
    assert len(set(data.canary)) >= 3  # it moves: a new sample every second


async def test_the_judge_fails_a_canary_whose_series_doubled(scraped: Scraped) -> None:
    worse = await scraped.pair(QUERY, canary="v2")
    outcome, reason = verdict(worse)
    assert outcome == "fail", reason
    # The same numbers are an improvement when lower is what is bad.
    assert verdict(worse, direction="decrease")[0] == "pass"


async def test_the_judge_passes_a_canary_whose_series_is_the_baselines(
    scraped: Scraped,
) -> None:
    same = await scraped.pair(QUERY, canary="v3")
    assert sorted(same.canary) == sorted(same.baseline)
    outcome, reason = verdict(same)
    assert outcome == "pass", reason


async def test_a_baseline_before_is_read_over_its_own_window(scraped: Scraped) -> None:
    half = (scraped.window.since + scraped.window.until) / 2
    before = Window(since=scraped.window.since, until=half)
    data = await series_pair(
        scraped.client,
        JudgeMetric(name="queue", kind="series", query=QUERY),
        component="shop",
        environment="prod",
        canary_version="v1",
        canary_window=Window(since=half, until=scraped.window.until),
        baseline_version="v1",
        baseline_window=before,
    )
    # One point a second in each half: together, as many as over the whole window.
    seconds = half - scraped.window.since
    assert abs(len(data.baseline) - seconds) <= 1 and abs(len(data.canary) - seconds) <= 1
    total = await scraped.pair(QUERY, canary="v1")
    assert abs(len(data.baseline) + len(data.canary) - len(total.canary)) <= 1


async def test_a_version_without_data_is_no_data_for_the_judge(scraped: Scraped) -> None:
    data = await scraped.pair(QUERY, canary="v9")
    assert data.canary == [] and len(data.baseline) >= SCRAPES
    outcome, reason = verdict(data)
    assert outcome == "fail" and "queue: no data" in reason
    # NaN points (0/0) are no data too, not an error.
    nan = await scraped.pair(f'{GAUGE}{{version="{{{{version}}}}",app="shop"}} * 0 / 0', "v2")
    assert nan.baseline == [] and nan.canary == []


async def test_what_prometheus_refuses_is_a_series_error_in_its_words(
    scraped: Scraped,
) -> None:
    with pytest.raises(SeriesError) as parse:
        await scraped.pair("sum(rate(x[1m])", canary="v2")
    assert str(parse.value).startswith("series metric queue, baseline: Prometheus refused")
    assert "bad_data" in str(parse.value) and "parse error" in str(parse.value)

    with pytest.raises(SeriesError, match="returns 3 series; aggregate them into one"):
        await scraped.pair(GAUGE, canary="v2")

    with pytest.raises(SeriesError, match="returns inf at .*guard divisions"):
        await scraped.pair(f'{GAUGE}{{version="{{{{version}}}}",app="shop"}} / 0', canary="v2")

    with pytest.raises(SeriesError, match="beyond the ±1e\\+15 a series metric accepts"):
        await scraped.pair(f'{GAUGE}{{version="{{{{version}}}}",app="shop"}} * 1e14', "v2")
