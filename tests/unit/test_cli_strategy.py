"""`r2c deploy --canary 20,50,100 --pause 30s --analysis 'error_rate<0.05'`: the request the
API takes, and clear usage errors for what it would refuse."""

from __future__ import annotations

import pytest

from cli.deploy import build_request
from cli.strategy import UsageError, parse_analysis, parse_weights
from core.models.deployments import DeploymentRequest


def test_analysis_shorthand_is_a_builtin_metric_with_a_success_condition() -> None:
    assert parse_analysis("error_rate<0.05") == {
        "metrics": [
            {"name": "error_rate", "success_condition": "result < 0.05", "interval": "10s",
             "count": 3}
        ]
    }  # fmt: skip
    two = parse_analysis(" error_rate <= 0.01 , latency_p99_ms<250", "2s", 5)
    assert [(m["name"], m["success_condition"], m["interval"], m["count"]) for m in
            two["metrics"]] == [("error_rate", "result <= 0.01", "2s", 5),
                                ("latency_p99_ms", "result < 250", "2s", 5)]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("error_rate", "write METRIC<THRESHOLD"),
        ("error_rate<abc", "write METRIC<THRESHOLD"),
        ("error_rate < 0.1; rm -rf /", "write METRIC<THRESHOLD"),
        ("cpu<0.5", "unknown metric 'cpu'"),
        ("error_rate<0.1,error_rate<0.2", "given twice"),
    ],
)
def test_bad_analysis_is_a_usage_error(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_analysis(text)


def test_weights() -> None:
    assert parse_weights("20,50,100") == [20, 50, 100]
    assert parse_weights("10,30") == [10, 30, 100]  # always ends with all traffic
    for bad in ("50,20", "0,100", "20,20,100", "x", "150", ""):
        with pytest.raises(UsageError):
            parse_weights(bad)


def test_the_request_is_what_the_api_accepts() -> None:
    body = build_request("demo", "v2", "staging", canary="20,50,100", pause="30s",
                         analysis="error_rate<0.05", analysis_interval="1s",
                         analysis_count=2)  # fmt: skip
    steps = body["strategy"]["steps"]
    assert [next(iter(s)) for s in steps] == [
        "set_weight", "pause", "analysis", "set_weight", "pause", "analysis", "set_weight"
    ]  # fmt: skip
    assert steps[1] == {"pause": {"duration": "30s"}}
    DeploymentRequest.model_validate(body)  # the API's own model takes it as it is
    with pytest.raises(UsageError, match="go with --canary"):
        build_request("demo", "v2", "dev", analysis="error_rate<0.05")
    with pytest.raises(UsageError, match="a duration"):
        build_request("demo", "v2", "dev", canary="50", pause="soon")
