"""Component definitions: what is accepted and what is refused, with the reason."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.models.components import ComponentSpec, fill_template


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
        (_spec(command=["srv", "{port:>999999999}"]), "no format spec, conversion"),
        (_spec(command=["srv", "{port!r}"]), "no format spec, conversion"),
        (_spec(command=["srv", "{port}", "{version.__class__}"]), "no format spec, conversion"),
        (_spec(command=["srv", "{port}", "{instance[0]}"]), "no format spec, conversion"),
        (_spec(command=["srv", "{port}", "{}"]), "no format spec, conversion"),
        (_spec(command=["srv", "{port}"], env={"X": "{port:>99}"}), "no format spec"),
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


def test_templates_are_filled_without_str_format() -> None:
    values = {"port": "8080", "version": "v{1}", "instance": "demo.dev.blue.1"}
    assert fill_template("--port={port} {{json}} {version}", values) == "--port=8080 {json} v{1}"
    with pytest.raises(ValueError, match="not a known placeholder"):
        fill_template("{port:>9}", values)


def test_dependencies_are_other_components_with_valid_constraints() -> None:
    runtime = {"command": ["serve", "{port}"]}
    spec = ComponentSpec(
        name="web", runtime=runtime, depends_on=[{"component": "api", "version": ">=2.0,<3"}]
    )
    assert spec.depends_on[0].component == "api"
    for bad, says in [
        ([{"component": "web"}], "cannot depend on itself"),
        ([{"component": "api"}, {"component": "api"}], "listed once"),
        ([{"component": "api", "version": "two or more"}], "not a version constraint"),
        ([{"component": "Bad_Name"}], "component"),
        ([{"component": f"c{i}"} for i in range(21)], "at most 20"),
    ]:
        with pytest.raises(ValidationError, match=says):
            ComponentSpec(name="web", runtime=runtime, depends_on=bad)
