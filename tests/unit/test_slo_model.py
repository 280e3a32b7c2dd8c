"""SLO declarations and error budget arithmetic: the bounds, the router buckets, the figures."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from activities.infrastructure.local.router.metrics import BUCKETS
from core.models.analysis import RouterCounters
from core.models.components import ComponentSpec
from core.models.slo import (
    ROUTER_BUCKETS,
    SloSpec,
    bucket_at_or_below,
    burn_rate,
    error_budget_remaining,
    increase,
)

EXAMPLE = {
    "availability": {"objective": 0.999, "window": "30d"},
    "latency": {"objective": 0.99, "threshold": "300ms", "window": "30d"},
}


def _refusal(slo: dict[str, object]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        SloSpec.model_validate(slo)
    error = caught.value.errors()[0]
    return ".".join(str(p) for p in error["loc"]), error["msg"]


def test_the_readme_example_is_accepted_and_the_threshold_judged_at_a_router_bucket() -> None:
    spec = SloSpec.model_validate(EXAMPLE)
    assert spec.availability is not None and spec.latency is not None
    assert spec.availability.window == 30 * 86400
    assert spec.latency.threshold == pytest.approx(0.3)
    assert spec.latency.bucket == 0.25  # 300ms is not a bucket: the one at or below it
    assert spec.declared() == ["availability", "latency"]


def test_the_buckets_are_the_routers() -> None:
    assert ROUTER_BUCKETS == BUCKETS
    assert bucket_at_or_below(0.25) == 0.25  # a bucket bound is itself
    assert bucket_at_or_below(0.001) == 0.001
    assert bucket_at_or_below(60) == 10.0


@pytest.mark.parametrize(
    ("slo", "field", "words"),
    [
        ({"availability": {"objective": 1}}, "availability.objective", "less than 1"),
        ({"availability": {"objective": 0}}, "availability.objective", "greater than 0"),
        ({"availability": {"objective": 0.999999}}, "availability.objective", "five nines"),
        ({"availability": {"objective": 0.9, "window": "59m"}}, "availability.window", "3600"),
        ({"availability": {"objective": 0.9, "window": "91d"}}, "availability.window", "7776000"),
        ({"availability": {"objective": 0.9, "window": "soon"}}, "availability.window", "duration"),
        ({"latency": {"objective": 0.9, "threshold": "0.5ms"}}, "latency.threshold", "0.001"),
        ({"latency": {"objective": 0.9, "threshold": "61s"}}, "latency.threshold", "60"),
        ({"latency": {"objective": 0.9}}, "latency.threshold", "required"),
        ({"availability": {"objective": 0.9, "goal": 1}}, "availability.goal", "not permitted"),
        ({"throughput": {"objective": 0.9}}, "throughput", "not permitted"),
    ],
)
def test_out_of_bounds_declarations_are_refused_with_their_field(
    slo: dict[str, object], field: str, words: str
) -> None:
    where, message = _refusal(slo)
    assert where == field
    assert words in message


def test_five_nines_are_allowed() -> None:
    assert SloSpec.model_validate({"availability": {"objective": 0.99999}}).availability


def test_a_component_spec_carries_its_slo() -> None:
    spec = ComponentSpec.model_validate(
        {"name": "web", "runtime": {"command": ["x", "{port}"]}, "slo": EXAMPLE}
    )
    assert spec.slo is not None and spec.slo.latency is not None


def test_error_budget_figures() -> None:
    # 0.999 allows 1 bad request in 1,000: none spent, half, all, twice.
    assert error_budget_remaining(0, 1000, 0.999) == 1.0
    assert error_budget_remaining(1, 2000, 0.999) == pytest.approx(0.5)
    assert error_budget_remaining(1, 1000, 0.999) == pytest.approx(0.0)
    assert error_budget_remaining(3, 1000, 0.999) == pytest.approx(-2.0)
    assert error_budget_remaining(0, 0, 0.999) is None  # no traffic, no verdict
    assert burn_rate(20, 1000, 0.99) == pytest.approx(2.0)
    assert burn_rate(0, 0, 0.99) is None


def _c(requests: int, errors: int, fast: int = 0) -> RouterCounters:
    return RouterCounters(requests=requests, errors=errors, buckets=[(0.25, fast), (0.5, requests)])


def test_increase_sums_versions_and_handles_restarts_like_prometheus() -> None:
    before = {"v1": _c(100, 1, 90), "v2": _c(50, 5, 40)}
    after = {
        "v1": _c(130, 2, 110),  # +30 requests, +1 error, +20 fast
        "v2": _c(10, 1, 9),  # went down: the router restarted, all 10 are new
        "v3": _c(7, 0, 7),  # new version: counted in full
    }
    added = increase(before, after, 0.25)
    assert (added.requests, added.errors, added.latency_good) == (30 + 10 + 7, 1 + 1, 20 + 9 + 7)
    # A version that vanished adds nothing; no earlier reading adds nothing either.
    assert increase(before, {"v1": _c(100, 1, 90)}, 0.25).requests == 0
    assert increase(None, after, 0.25).requests == 0
    # Without a latency SLO nothing is counted as fast.
    assert increase(before, after, None).latency_good == 0
