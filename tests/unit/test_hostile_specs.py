"""Generated hostile input against the deployment model and the condition language: whatever
is thrown at them, the answer is a validation error, or a spec the workflow can carry and
time (finite, bounded numbers that survive Temporal's JSON payloads)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.conditions import ConditionError, evaluate, validate
from core.models.deployments import DeploymentRequest
from core.models.durations import MAX_DURATION_SECONDS

NUMBERS = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["99999999999d", "1e308", "Infinity", "NaN", "30s", "1h30m", "-5s", ""]),
)
TOKENS = st.sampled_from(
    ["result", "len(", "max(", "min(", "sum(", "avg(", "abs(", "is_nan(", ")", "[", "]", "0",
     "-1", "1e308", "9" * 400, "*", "/", "%", "+", "-", "<", ">=", "==", "and", "or", "not",
     "(", "1e999", "0.05", ".", "**", "'x'", "lambda", ",", " "]
)  # fmt: skip


@given(st.lists(TOKENS, max_size=30).map(" ".join), st.one_of(
    st.none(), st.floats(), st.lists(st.floats(), max_size=5),
    st.integers(min_value=-(10**30), max_value=10**30)))  # fmt: skip
@settings(max_examples=400, deadline=None)
def test_conditions_only_ever_raise_condition_errors(expression: str, result: Any) -> None:
    try:
        validate(expression)
    except ConditionError:
        return
    try:
        assert evaluate(expression, result) in (True, False)
    except ConditionError:
        pass


def _metric(value: Any) -> dict[str, Any]:
    return {"name": "error_rate", "failure_condition": "result > 0.05", "interval": value,
            "count": 3, "initial_delay": value}  # fmt: skip


SPECS = st.fixed_dictionaries(
    {
        "component": st.sampled_from(["demo", "../../x", "/", "a" * 80, "Demo", "ok-1"]),
        "environment": st.sampled_from(["dev", "all", "a:b", "", "prod-eu"]),
        "version": st.sampled_from(["v2", "v2;rm -rf", "ü", "1.2.3+build"]),
        "strategy": st.one_of(
            st.fixed_dictionaries(
                {
                    "type": st.just("canary"),
                    "steps": st.lists(
                        st.one_of(
                            st.fixed_dictionaries({"set_weight": NUMBERS}),
                            st.fixed_dictionaries(
                                {"pause": st.fixed_dictionaries({"duration": NUMBERS})}
                            ),
                            st.fixed_dictionaries(
                                {
                                    "analysis": st.fixed_dictionaries(
                                        {"metrics": st.lists(NUMBERS.map(_metric), max_size=3)}
                                    )
                                }
                            ),  # fmt: skip
                        ),
                        max_size=4,
                    ),
                    "progress_deadline_seconds": NUMBERS,
                }
            ),
            st.fixed_dictionaries(
                {
                    "type": st.just("blue_green"),
                    "scale_down_delay_seconds": NUMBERS,
                    "auto_promotion_seconds": NUMBERS,
                }  # fmt: skip
            ),
            st.fixed_dictionaries(
                {
                    "type": st.just("rolling"),
                    "pause_between_batches": NUMBERS,
                    "batch_size": NUMBERS,
                }  # fmt: skip
            ),
        ),
        "env": st.dictionaries(
            st.sampled_from(
                [
                    "LD_PRELOAD",
                    "PYTHONWARNINGS",
                    "NODE_OPTIONS",
                    "BASH_ENV",
                    "PATH",
                    "GREETING",
                    "bad name",
                    "R2C_TARGET",
                ]
            ),  # fmt: skip
            st.sampled_from(["1", '{"a": {"b": 1}}', "{port:>999999999}", "x\x00y"]),
            max_size=3,
        ),
    }
)


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []


@given(SPECS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_deployment_spec_is_refused_or_safe_to_run(spec: dict[str, Any]) -> None:
    try:
        request = DeploymentRequest.model_validate(spec)
    except ValidationError:
        return
    dumped = request.model_dump(mode="json")
    numbers = _numbers(dumped)
    assert all(math.isfinite(n) for n in numbers)
    assert all(abs(n) <= max(MAX_DURATION_SECONDS, 10**4) for n in numbers)
    # What the API accepts, the workflow can decode: strict JSON, no Infinity or NaN.
    text = json.dumps(dumped, allow_nan=False)
    assert DeploymentRequest.model_validate_json(text) == request
    assert not any(k.startswith(("LD_", "PYTHON", "NODE_", "BASH_")) for k in request.env)
    # `all` is a name like any other: "every environment" is `*` in ids (core/ids.py).
    assert request.component in ("demo", "ok-1") and request.environment in (
        "dev",
        "all",
        "prod-eu",
    )
