"""Component definitions: what is accepted and what is refused, with the reason."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.models.components import ComponentSpec


def _spec(**runtime: Any) -> dict[str, Any]:
    return {"name": "demo", "runtime": {"command": ["srv", "--port", "{port}"], **runtime}}


def test_minimal_component_gets_sane_defaults() -> None:
    spec = ComponentSpec.model_validate(_spec())
    assert spec.runtime.replicas == 1
    assert spec.runtime.health_check.path == "/health"
    assert spec.runtime.metrics_path == "/metrics"


def test_port_may_come_from_the_environment() -> None:
    spec = ComponentSpec.model_validate(
        {"name": "demo", "runtime": {"command": ["srv"], "env": {"PORT": "{port}"}}}
    )
    assert spec.runtime.env == {"PORT": "{port}"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_spec(command=["srv", "--fixed", "80"]), "must use {port}"),
        (_spec(command=["srv", "{port}", "{secret}"]), "unknown placeholder(s) ['secret']"),
        (_spec(command=["srv", "{port"]), "not a valid template"),
        (_spec(env={"1BAD": "x"}), "not a valid environment variable name"),
        ({"name": "-bad-", "runtime": {"command": ["srv", "{port}"]}}, "name"),
        (_spec(health_check={"path": "health"}), "String should match pattern"),
    ],
)
def test_invalid_definitions_are_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ComponentSpec.model_validate(body)
    assert message in str(caught.value)


def test_literal_braces_are_allowed_when_doubled() -> None:
    spec = ComponentSpec.model_validate(_spec(command=["srv", "{port}", "--json", "{{}}"]))
    assert spec.runtime.command[-1] == "{{}}"
