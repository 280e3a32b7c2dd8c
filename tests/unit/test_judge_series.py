"""Series metrics from Prometheus, against a Prometheus served in-process (httpx.MockTransport):
the step and range each side asks, and every way an answer is refused, in words."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from activities.analysis.judge_series import (
    MIN_STEP,
    SeriesError,
    range_of,
    series_pair,
    step_for,
)
from activities.analysis.prometheus import MAX_RANGE_POINTS, PrometheusClient, PrometheusError
from cli.processes import free_port
from core.judge.config import JudgeMetric
from core.judge.data import MAX_SAMPLES
from core.judge.recording import Window

QUERY = 'avg(queue_depth{version="{{version}}",app="{{component}}",env="{{environment}}"})'
METRIC = JudgeMetric(name="queue", kind="series", query=QUERY)
NOW = 1_700_000_000.0
CANARY = Window(since=NOW - 60, until=NOW)
BEFORE = Window(since=NOW - 120, until=NOW - 60)


def matrix(*series: list[Any]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"i": str(i)}, "values": values} for i, values in enumerate(series)
            ],
        },
    }


class FakePrometheus:
    """Answers /api/v1/query_range with `answer(params)` and keeps every request's params."""

    def __init__(self, answer: Callable[[dict[str, str]], httpx.Response]) -> None:
        self.answer = answer
        self.asked: list[dict[str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        params = dict(request.url.params)
        self.asked.append(params)
        return self.answer(params)


def points(params: dict[str, str], value: Callable[[int], str]) -> list[Any]:
    """Every point the query asks for, as Prometheus would answer it."""
    start, end, step = (float(params[k]) for k in ("start", "end", "step"))
    count = math.floor((end - start) / step + 1e-9) + 1
    return [[start + i * step, value(i)] for i in range(count)]


def by_version(params: dict[str, str]) -> httpx.Response:
    """v1 reads 10, 11, 12...; v2 reads 100, 101, ..."""
    base = 100 if 'version="v2"' in params["query"] else 10
    return httpx.Response(200, json=matrix(points(params, lambda i: str(base + i))))


async def pair(
    answer: Callable[[dict[str, str]], httpx.Response],
    metric: JudgeMetric = METRIC,
    canary_version: str = "v2",
    canary_window: Window = CANARY,
    baseline_window: Window = BEFORE,
) -> tuple[Any, FakePrometheus]:
    fake = FakePrometheus(answer)
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as http:
        data = await series_pair(
            PrometheusClient(http, "http://prometheus:9090/"),
            metric,
            component="shop",
            environment="prod",
            canary_version=canary_version,
            canary_window=canary_window,
            baseline_version="v1",
            baseline_window=baseline_window,
        )
    return data, fake


async def refused(answer: Callable[[dict[str, str]], httpx.Response], **kw: Any) -> str:
    with pytest.raises(SeriesError) as caught:
        await pair(answer, **kw)
    return str(caught.value)


# --------------------------------------------------------------------------- the step


@pytest.mark.parametrize(
    ("seconds", "step"),
    [
        (0, 1.0),
        (60, 1.0),
        (MAX_SAMPLES, 1.0),
        (MAX_SAMPLES + 1, 2.0),
        (2 * MAX_SAMPLES, 2.0),
        (86_400, 9.0),
    ],
)
def test_the_step_is_a_second_until_the_window_would_exceed_the_samples(
    seconds: float, step: float
) -> None:
    assert step_for(Window(since=NOW, until=NOW + seconds)) == step


@pytest.mark.parametrize(
    "seconds", [1, 59.5, 60, 9_999.999, 10_000, 10_001, 12_345.678, 86_400, 7 * 86_400, 1e9]
)
def test_a_window_never_yields_more_than_the_judge_compares_nor_reaches_its_end(
    seconds: float,
) -> None:
    window = Window(since=NOW + 0.123, until=NOW + 0.123 + seconds)
    asked = range_of(window)
    assert asked is not None
    start, end, step = asked
    # Prometheus counts in milliseconds.
    start_ms, end_ms, step_ms = (round(x * 1000) for x in asked)
    count = (end_ms - start_ms) // step_ms + 1
    assert start == pytest.approx(window.since, abs=1e-3) and end < window.until
    assert step >= MIN_STEP and step == int(step)
    assert count <= MAX_SAMPLES
    # As many points as fit: one more step would reach the end of the window.
    assert end + step >= window.until - 1e-3
    assert count == min(math.ceil(seconds / step), MAX_SAMPLES)


def test_an_empty_window_has_no_instant() -> None:
    assert range_of(Window(since=NOW, until=NOW)) is None


# --------------------------------------------------------------------------- the queries


async def test_each_side_is_asked_with_its_version_over_its_window() -> None:
    data, fake = await pair(by_version)
    baseline, canary = fake.asked
    assert baseline["query"] == 'avg(queue_depth{version="v1",app="shop",env="prod"})'
    assert canary["query"] == 'avg(queue_depth{version="v2",app="shop",env="prod"})'
    assert (float(baseline["start"]), float(baseline["end"])) == (NOW - 120, NOW - 61)
    assert (float(canary["start"]), float(canary["end"])) == (NOW - 60, NOW - 1)
    assert baseline["step"] == canary["step"] == "1.000"
    assert data.baseline == [float(10 + i) for i in range(60)]
    assert data.canary == [float(100 + i) for i in range(60)]


async def test_a_long_window_is_spread_over_at_most_max_samples_points() -> None:
    day = Window(since=NOW - 86_400, until=NOW)
    data, fake = await pair(by_version, canary_window=day, baseline_window=day)
    assert [p["step"] for p in fake.asked] == ["9.000", "9.000"]
    assert len(data.baseline) == len(data.canary) == 9_600


async def test_nan_points_are_dropped_and_no_series_is_no_values() -> None:
    def gaps(params: dict[str, str]) -> httpx.Response:
        if 'version="v1"' in params["query"]:
            return httpx.Response(200, json=matrix())
        return httpx.Response(200, json=matrix(points(params, lambda i: "NaN" if i % 2 else "1")))

    data, _ = await pair(gaps)
    assert data.baseline == [] and data.canary == [1.0] * 30


async def test_an_empty_window_asks_nothing() -> None:
    data, fake = await pair(by_version, canary_window=Window(since=NOW, until=NOW))
    assert data.canary == [] and len(fake.asked) == 1


# --------------------------------------------------------------------------- refusals


async def test_an_infinity_is_refused_with_a_way_out() -> None:
    def infinite(params: dict[str, str]) -> httpx.Response:
        return httpx.Response(200, json=matrix(points(params, lambda i: "+Inf")))

    message = await refused(infinite)
    assert message.startswith("series metric queue, baseline: the query returns inf")
    assert "guard divisions" in message


async def test_several_series_must_be_aggregated() -> None:
    def two(params: dict[str, str]) -> httpx.Response:
        return httpx.Response(200, json=matrix([[NOW, "1"]], [[NOW, "2"]]))

    assert "returns 2 series; aggregate them into one" in await refused(two)


async def test_prometheus_refusal_is_passed_on_in_its_words() -> None:
    def bad(params: dict[str, str]) -> httpx.Response:
        body = {"status": "error", "errorType": "bad_data", "error": "parse error: unexpected"}
        return httpx.Response(400, json=body)

    message = await refused(bad)
    assert message == (
        "series metric queue, baseline: Prometheus refused the query:"
        " bad_data: parse error: unexpected"
    )


async def test_values_beyond_the_judges_bounds_are_refused() -> None:
    def huge(params: dict[str, str]) -> httpx.Response:
        return httpx.Response(200, json=matrix(points(params, lambda i: "2e15")))

    message = await refused(huge)
    assert "returns 2e+15, beyond the ±1e+15 a series metric accepts" in message


async def test_a_version_that_could_escape_the_query_is_never_sent() -> None:
    message = await refused(by_version, canary_version='v2"} or vector(1) #')
    assert "series metric queue, canary: version" in message
    assert "cannot be put into a PromQL query" in message


async def test_metrics_without_a_query_or_of_another_kind_are_refused() -> None:
    no_query = JudgeMetric(name="queue", kind="series")
    assert "has no `query`" in await refused(by_version, metric=no_query)
    latency = JudgeMetric(name="latency", kind="latency")
    assert "is a latency metric, not a series one" in await refused(by_version, metric=latency)


async def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    backwards = Window(since=NOW, until=NOW - 1)
    message = await refused(by_version, canary_window=backwards)
    assert "the canary's window ends" in message and "before it starts" in message


async def test_an_oversized_answer_is_not_read_to_the_end() -> None:
    def flood(params: dict[str, str]) -> httpx.Response:
        many = [[[NOW, "1"]] * 10 for _ in range(20_000)]
        return httpx.Response(200, content=json.dumps(matrix(*many)).encode())

    assert "answer is over 4 MiB" in await refused(flood)


async def test_an_answer_that_is_not_a_range_is_refused() -> None:
    def vector(params: dict[str, str]) -> httpx.Response:
        body = {"status": "success", "data": {"resultType": "vector", "result": []}}
        return httpx.Response(200, json=body)

    assert "a range query answered a vector, not a matrix" in await refused(vector)


async def test_an_unreachable_prometheus_is_a_series_error() -> None:
    async with httpx.AsyncClient() as http:
        client = PrometheusClient(http, f"http://127.0.0.1:{free_port()}")
        with pytest.raises(SeriesError, match="cannot reach Prometheus at"):
            await series_pair(
                client,
                METRIC,
                component="shop",
                environment="prod",
                canary_version="v2",
                canary_window=CANARY,
                baseline_version="v1",
                baseline_window=CANARY,
            )


async def test_the_client_refuses_ranges_prometheus_would_refuse() -> None:
    fake = FakePrometheus(by_version)
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as http:
        client = PrometheusClient(http, "http://prometheus:9090")
        with pytest.raises(PrometheusError, match="ask a larger step"):
            await client.query_range("up", NOW, NOW + MAX_RANGE_POINTS, 1.0)
        with pytest.raises(ValueError, match="not a range"):
            await client.query_range("up", NOW, NOW - 1, 1.0)
    assert fake.asked == []
