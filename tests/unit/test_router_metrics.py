"""The built-in metrics from the router's own Prometheus text: parsing, windows, quantiles."""

from __future__ import annotations

import pytest

from activities.analysis.router_metrics import (
    builtin_value,
    histogram_quantile,
    parse,
    window,
)
from activities.infrastructure.local.router.metrics import BUCKETS, RouterMetrics
from core.models.analysis import RouterCounters


def rendered(*observations: tuple[str, int, float]) -> str:
    """What the router serves on /_r2c/metrics after these (version, status, seconds)."""
    metrics = RouterMetrics("demo", "dev")
    for version, status, seconds in observations:
        metrics.observe(version, status, seconds)
    return metrics.render()


def test_parse_counts_requests_errors_and_buckets_per_version() -> None:
    text = rendered(
        *[("v1", 200, 0.0003)] * 3,
        ("v1", 500, 0.003),
        ("v1", 404, 0.003),  # a client error is not the version's fault
        *[("v2", 502, 0.02)] * 2,
        ("v2", 503, 20.0),  # beyond the last finite bucket
    )
    counters = parse(text)
    assert set(counters) == {"v1", "v2"}
    v1, v2 = counters["v1"], counters["v2"]
    assert (v1.requests, v1.errors) == (5, 1)
    assert (v2.requests, v2.errors) == (3, 3)
    # Cumulative, one pair per finite bound, +Inf left out (it is `requests`).
    assert [le for le, _ in v1.buckets] == list(BUCKETS)
    assert dict(v1.buckets)[0.0005] == 3
    assert dict(v1.buckets)[0.0025] == 3
    assert dict(v1.buckets)[0.005] == 5
    assert dict(v1.buckets)[10.0] == 5
    assert dict(v2.buckets)[0.01] == 0 and dict(v2.buckets)[0.025] == 2
    assert dict(v2.buckets)[10.0] == 2


def test_parse_of_a_router_with_no_traffic_is_empty() -> None:
    assert parse(rendered()) == {}


def test_parse_reads_escaped_labels_timestamps_and_other_metrics() -> None:
    text = "\n".join(
        [
            "# HELP something_else Not ours.",
            'something_else{version="v1"} 7',
            'r2c_router_requests_total{version="we\\"ird\\\\v",code="200"} 4 1700000000000',
            'r2c_router_requests_total{code="500", version="we\\"ird\\\\v"} 1e0',
            "",
        ]
    )
    counters = parse(text)
    assert counters == {'we"ird\\v': RouterCounters(requests=5, errors=1)}


def test_parse_takes_the_histogram_count_when_request_counters_are_missing() -> None:
    text = 'r2c_router_request_duration_seconds_count{version="v1"} 9\n'
    assert parse(text)["v1"].requests == 9


def test_parse_refuses_what_is_not_prometheus_text() -> None:
    with pytest.raises(ValueError, match="not a Prometheus sample line"):
        parse("<html>502 Bad Gateway</html>\n")


def test_window_is_the_difference_between_two_readings() -> None:
    before = parse(rendered(("v1", 200, 0.003), ("v1", 500, 0.03)))["v1"]
    after = parse(
        rendered(("v1", 200, 0.003), ("v1", 500, 0.03), ("v1", 500, 0.3), ("v1", 200, 0.003))
    )["v1"]
    between = window(after, before)
    assert (between.requests, between.errors) == (2, 1)
    assert dict(between.buckets)[0.005] == 1
    assert dict(between.buckets)[0.05] == 1
    assert dict(between.buckets)[0.5] == 2
    assert window(after, None) == after


def test_a_router_restart_makes_the_earlier_reading_count_as_zero() -> None:
    before = RouterCounters(requests=100, errors=10, buckets=[(0.1, 90), (1.0, 100)])
    after = RouterCounters(requests=20, errors=1, buckets=[(0.1, 20), (1.0, 20)])
    assert window(after, before) == after
    # Any single counter going down gives the restart away, even if the total grew.
    grown = RouterCounters(requests=120, errors=12, buckets=[(0.1, 80), (1.0, 120)])
    assert window(grown, before) == grown


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    # 10 observations in (0, 0.1], 20 in (0.1, 0.2], 10 in (0.2, 0.5], 10 above 0.5.
    buckets = [(0.1, 10), (0.2, 30), (0.5, 40)]
    assert histogram_quantile(0.1, buckets, 50) == pytest.approx(0.05)  # rank 5 of 10 in the 1st
    assert histogram_quantile(0.5, buckets, 50) == pytest.approx(0.175)  # 0.1 + 0.1 * 15/20
    assert histogram_quantile(0.7, buckets, 50) == pytest.approx(0.35)  # 0.2 + 0.3 * 5/10
    assert histogram_quantile(0.6, buckets, 50) == pytest.approx(0.2)  # rank 30: the bound
    # A rank in the +Inf bucket gives the highest finite bound, as in Prometheus.
    assert histogram_quantile(0.99, buckets, 50) == pytest.approx(0.5)
    assert histogram_quantile(0.5, buckets, 0) is None
    assert histogram_quantile(0.5, [], 10) is None


def test_latency_percentiles_of_real_router_output_in_milliseconds() -> None:
    # 100 answers of 3 ms, all in the bucket (2.5 ms, 5 ms].
    counters = parse(rendered(*[("v1", 200, 0.003)] * 100))["v1"]
    assert builtin_value("latency_p50_ms", counters, None) == pytest.approx(3.75)
    assert builtin_value("latency_p99_ms", counters, None) == pytest.approx(4.975)
    # 60 fast (<= 0.5 ms) and 40 slow (in (0.25 s, 0.5 s]): p50 stays in the first bucket,
    # p99 lands in the slow one: 0.25 + 0.25 * (99 - 60) / 40 s.
    mixed = parse(rendered(*[("v1", 200, 0.0001)] * 60, *[("v1", 200, 0.3)] * 40))["v1"]
    assert builtin_value("latency_p50_ms", mixed, None) == pytest.approx(0.5 * 50 / 60)
    assert builtin_value("latency_p99_ms", mixed, None) == pytest.approx(493.75)


def test_error_rate_and_request_rate() -> None:
    counters = parse(rendered(*[("v2", 200, 0.001)] * 3, ("v2", 500, 0.001)))["v2"]
    assert builtin_value("error_rate", counters, None) == 0.25
    assert builtin_value("request_rate", counters, 2.0) == 2.0
    assert builtin_value("request_rate", counters, None) is None


def test_an_empty_window_is_no_evidence() -> None:
    counters = parse(rendered(("v2", 500, 0.001)))["v2"]
    empty = window(counters, counters)
    assert empty.requests == 0
    for metric in ("error_rate", "latency_p50_ms", "latency_p99_ms"):
        assert builtin_value(metric, empty, None) is None
    # No request in a known time is a real rate: zero.
    assert builtin_value("request_rate", empty, 1.0) == 0.0


def test_an_unknown_metric_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not a built-in metric"):
        builtin_value("apdex", RouterCounters(requests=1), None)
