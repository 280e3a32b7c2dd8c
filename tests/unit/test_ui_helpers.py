"""The dashboard's small rules: where sign-in may send the browser, the plan in words, the
chart's Prometheus queries and their bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.ui.auth import HOME, safe_next
from api.ui.pages import _script_json, plan_of
from api.ui.traffic import MAX_POINTS, queries, steps


@pytest.mark.parametrize(
    "value",
    [None, "", "https://evil.example/ui/", "//evil.example/ui/", "/ui//evil.example",
     "/ui/\\evil", "/api/v1/apikeys", "/ui/x\n", "/ui/" + "a" * 600],
)  # fmt: skip
def test_sign_in_never_redirects_off_the_dashboard(value: str | None) -> None:
    assert safe_next(value) == HOME


def test_sign_in_returns_to_the_dashboard_page_it_came_from() -> None:
    assert safe_next("/ui/deployments?component=demo") == "/ui/deployments?component=demo"


def test_the_plan_in_words() -> None:
    request = {
        "strategy": {
            "type": "canary",
            "steps": [
                {"set_weight": 20},
                {"pause": {"duration": "2s"}},
                {"pause": {}},
                {"analysis": {"metrics": []}},
            ],
        }
    }
    assert plan_of(request) == ["set weight 20%", "pause 2s", "pause until promoted", "analysis"]
    assert plan_of({"strategy": {"type": "blue_green"}}) == []
    assert plan_of({}) == []


def test_page_data_cannot_close_its_script_block() -> None:
    assert "</script>" not in _script_json('{"reason": "</script><script>alert(1)</script>"}')


def test_queries_take_names_only() -> None:
    promql = queries("demo", "staging", 30)
    assert 'component="demo",environment="staging"' in promql["error_rate"]
    assert "[30s]" in promql["latency_ms"]
    with pytest.raises(ValueError):
        queries('demo"} or vector(1) #', "staging", 30)


def test_a_long_deployment_is_charted_in_at_most_max_points() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    step, window = steps(start, start + timedelta(days=3))
    assert 3 * 86400 / step <= MAX_POINTS and window == 2 * step
    assert steps(start, start + timedelta(seconds=10)) == (5, 30)
