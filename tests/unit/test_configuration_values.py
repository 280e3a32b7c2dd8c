"""Configuration values on their own: keys, size bounds, diffs, and schema problems that name
key, path and rule without quoting a secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.configuration_diff import ABSENT, secret_diff, value_diff
from core.configuration_schema import check
from core.models.components import ComponentSpec
from core.models.configuration import MAX_VALUE_BYTES, ConfigWrite, DiffOp

RUNTIME = {"command": ["serve", "--port", "{port}"]}


def test_a_value_over_the_size_limit_is_refused_with_its_size() -> None:
    with pytest.raises(ValidationError, match="at most 65536"):
        ConfigWrite(value="x" * MAX_VALUE_BYTES)
    assert ConfigWrite(value={"a": [1, 2, None]}).scope.label() == "_/_"


def test_a_scope_names_only_valid_components_and_environments() -> None:
    with pytest.raises(ValidationError):
        ConfigWrite.model_validate({"value": 1, "scope": {"component": "Bad_Name"}})
    with pytest.raises(ValidationError):
        ConfigWrite.model_validate({"value": 1, "scope": {"region": "eu"}})


def test_the_diff_names_each_changed_path_and_treats_true_as_not_one() -> None:
    before = {"a": 1, "b": {"c": True, "d": "x"}, "gone": 1}
    after = {"a": 1, "b": {"c": 1, "d": "y", "new": [1]}}
    lines = {(d.path, d.op): (d.before, d.after) for d in value_diff(before, after)}
    assert lines == {
        ("$.b.c", DiffOp.CHANGED): (True, 1),
        ("$.b.d", DiffOp.CHANGED): ("x", "y"),
        ("$.b.new", DiffOp.ADDED): (None, [1]),
        ("$.gone", DiffOp.REMOVED): (1, None),
    }
    assert value_diff(ABSENT, 3)[0].op == DiffOp.ADDED
    assert value_diff({"x.y": 1}, {"x.y": 2})[0].path == "$['x.y']"
    assert value_diff([1], [1]) == []


def test_a_secret_diff_never_carries_values() -> None:
    for line in secret_diff(True, True) + secret_diff(False, True) + secret_diff(True, False):
        assert line.before is None and line.after is None


def test_schema_problems_name_key_path_and_rule() -> None:
    schema = {
        "type": "object",
        "properties": {"db.pool": {"type": "object", "properties": {"size": {"maximum": 10}}}},
        "required": ["db.url"],
    }
    problems = check(schema, {"db.pool": {"size": 50}}, set(), set())
    by_rule = {p.rule.split(":")[0]: p for p in problems}
    assert by_rule["maximum"].key == "db.pool"
    assert by_rule["maximum"].path == "$['db.pool']['size']"
    assert by_rule["maximum"].rule == "maximum: 10"
    assert by_rule["required"].key is None


def test_a_schema_problem_with_a_secret_value_does_not_quote_it() -> None:
    schema = {"properties": {"db.password": {"minLength": 20}}, "not": {"required": ["x"]}}
    problems = check(schema, {"db.password": "hunter2", "x": 1}, {"db.password"}, set())
    assert problems and all("hunter2" not in p.message for p in problems)


def test_an_unknown_secret_is_checked_for_presence_only() -> None:
    schema = {"properties": {"token": {"type": "integer"}}, "required": ["token"]}
    assert check(schema, {"token": None}, {"token"}, {"token"}) == []
    assert check(schema, {}, set(), set())[0].rule == 'required: ["token"]'


def test_a_component_config_schema_must_be_a_valid_bounded_json_schema() -> None:
    ok = ComponentSpec.model_validate(
        {"name": "api", "runtime": RUNTIME, "config_schema": {"type": "object"}}
    )
    assert ok.config_schema == {"type": "object"}
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        ComponentSpec.model_validate(
            {"name": "api", "runtime": RUNTIME, "config_schema": {"type": "nonsense"}}
        )
    with pytest.raises(ValidationError, match="at most 65536"):
        ComponentSpec.model_validate(
            {"name": "api", "runtime": RUNTIME, "config_schema": {"description": "x" * 70000}}
        )
