"""Routes' matching and templates, and CloudEvents read from HTTP, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from api.services.events_http import from_http
from api.services.events_matching import (
    TemplateError,
    context,
    matches,
    render,
    template_problems,
)
from core.errors import InvalidInputError
from core.models.deployments import DeploymentRequest
from core.models.events import CloudEvent, RouteMatch
from core.policies import RuleError


def ctx(data: Any = None, **attributes: Any) -> dict[str, Any]:
    event = CloudEvent.model_validate(
        {"specversion": "1.0", "id": "e1", "source": "/ci", "type": "com.x.build", "data": data}
        | attributes
    )
    return context(event)


@pytest.mark.parametrize(
    ("rule", "data", "expected"),
    [
        ({"type": "com.x.*"}, None, True),
        ({"type": "com.y.*"}, None, False),
        ({"source": "/c?"}, None, True),
        ({"subject": "*"}, None, False),  # no subject: a pattern never matches nothing
        ({"data": {"ref": "refs/tags/v*"}}, {"ref": "refs/tags/v1"}, True),
        ({"data": {"ref": "refs/tags/v*"}}, {"ref": "refs/heads/main"}, False),
        ({"data": {"a.b.0": 3}}, {"a": {"b": [3]}}, True),
        ({"data": {"flag": True}}, {"flag": 1}, False),
        ({"data": {"n": 1.0}}, {"n": 1}, True),
        ({"data": {"gone": None}}, {}, False),
        ({"data": {"gone": None}}, {"gone": None}, True),
        ({"expression": "data.n > 2 && type.startsWith('com.x')"}, {"n": 3}, True),
        ({"expression": "data.n > 2"}, {"n": 1}, False),
    ],
)
def test_conditions(rule: dict[str, Any], data: Any, expected: bool) -> None:
    assert matches(RouteMatch.model_validate(rule), ctx(data)) is expected


def test_an_expression_that_cannot_be_evaluated_is_an_error_not_a_match() -> None:
    with pytest.raises(RuleError):
        matches(RouteMatch(expression="data.missing > 1"), ctx({}))
    with pytest.raises(RuleError):
        matches(RouteMatch(expression="data.n"), ctx({"n": 1}))


def test_templates_keep_types_and_fill_text() -> None:
    template = {
        "version": "${data.release.tag_name}",
        "replicas": "${data.replicas}",
        "description": "release ${data.release.tag_name} of ${subject} (${data.draft})",
        "fixed": [1, "two", {"three": 3}],
    }
    filled = render(
        template, ctx({"release": {"tag_name": "v2"}, "replicas": 3, "draft": False}, subject="s")
    )
    assert filled == {
        "version": "v2",
        "replicas": 3,
        "description": "release v2 of s (false)",
        "fixed": [1, "two", {"three": 3}],
    }
    with pytest.raises(TemplateError, match="data.version"):
        render({"v": "${data.version}"}, ctx({}))
    with pytest.raises(TemplateError, match="scalar"):
        render({"v": "x ${data}"}, ctx({"a": 1}))


def test_a_template_is_checked_on_its_fixed_parts_only() -> None:
    good = {
        "component": "${data.component}",
        "version": "${data.version}",
        "environment": "staging",
        "replicas": "${data.replicas}",
        "strategy": {"type": "canary", "steps": [{"set_weight": "${data.weight}"}]},
    }
    assert template_problems(DeploymentRequest, good) == []
    missing = {k: v for k, v in good.items() if k != "version"}
    assert [p["field"] for p in template_problems(DeploymentRequest, missing)] == ["input.version"]
    bad_env = {**good, "environment": "Not An Env"}
    assert [p["field"] for p in template_problems(DeploymentRequest, bad_env)] == [
        "input.environment"
    ]
    unknown_root = {**good, "version": "${body.version}"}
    assert [p["field"] for p in template_problems(DeploymentRequest, unknown_root)] == [
        "input.version"
    ]


def test_binary_and_structured_modes() -> None:
    binary = from_http(
        {
            "ce-specversion": "1.0",
            "ce-id": "1",
            "ce-source": "/s",
            "ce-type": "t",
            "ce-time": "2026-01-05T12:00:00Z",
            "content-type": "text/plain; charset=utf-8",
        },
        b"hello",
    )
    assert binary.data == "hello" and binary.time is not None
    assert binary.datacontenttype == "text/plain; charset=utf-8"
    octets = from_http(
        {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
         "content-type": "application/octet-stream"},
        b"\x00\x01",
    )  # fmt: skip
    assert octets.data is None and octets.data_base64 == "AAE="
    structured = from_http(
        {"content-type": "application/cloudevents+json; charset=utf-8"},
        b'{"specversion":"1.0","id":"1","source":"/s","type":"t","comexampleext":"v"}',
    )
    assert structured.extensions == {"comexampleext": "v"}


@pytest.mark.parametrize(
    ("headers", "body", "says"),
    [
        ({"content-type": "application/cloudevents+json"}, b"[1]", "one JSON object"),
        ({"content-type": "application/cloudevents+json"}, b"{", "not JSON"),
        (
            {"content-type": "application/cloudevents+json"},
            b'{"specversion":"1.0","source":"/s"}',
            "missing id, type",
        ),
        (
            {"content-type": "application/cloudevents+json"},
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}',
            "not both",
        ),
        ({"ce-specversion": "0.3", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}, b"", "1.0"),
        ({"content-type": "application/json"}, b"{}", "ce-specversion"),
        (
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-source": "/s",
                "ce-type": "t",
                "content-type": "application/json",
            },
            b"{",
            "is not JSON",
        ),  # fmt: skip
        ({"content-type": "application/cloudevents+json"}, b"[" * 100_000, "not JSON"),
        (
            {"content-type": "application/cloudevents+json"},
            b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":'
            + b"[" * 70
            + b"]" * 70
            + b"}",
            "nested more than 64",
        ),  # fmt: skip
    ],
)
def test_what_is_not_a_cloudevent(headers: dict[str, str], body: bytes, says: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        from_http(headers, body)
    assert says in err.value.message or says in str(err.value.details)
    assert err.value.hint and "CloudEvents 1.0" in err.value.hint
