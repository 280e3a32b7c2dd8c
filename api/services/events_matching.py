"""Which routes an event matches, and the input a route's template makes of it; no I/O.

An event is seen by routes as one context: `id`, `source`, `type`, `subject`, `time` (RFC 3339
text), `datacontenttype`, `data` and `extensions`. Globs are `fnmatch` patterns matched
case-sensitively; CEL expressions are compiled and evaluated by `core.policies` (the same
bounded evaluator as policy rules).
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Any

import cel
from pydantic import BaseModel, ValidationError

from core.models.events import CloudEvent, RouteMatch
from core.policies import RuleError, compile_rule, evaluate

PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")
ROOTS = ("id", "source", "type", "subject", "time", "datacontenttype", "data", "extensions")
_PATH = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,15}$")
_GLOB_CHARS = frozenset("*?[")


class TemplateError(ValueError):
    """A placeholder the event cannot fill, or one that can never be filled."""


def context(event: CloudEvent) -> dict[str, Any]:
    """The event as routes see it."""
    return {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "subject": event.subject,
        "time": event.time.isoformat() if event.time else None,
        "datacontenttype": event.datacontenttype,
        "data": event.data if event.data is not None else event.data_base64,
        "extensions": dict(event.extensions),
    }


_MISSING = object()


def lookup(ctx: dict[str, Any], path: str) -> Any:
    """The value at dotted `path` (list items by index), or `_MISSING`."""
    node: Any = ctx
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, str) and _GLOB_CHARS & set(expected):
        return isinstance(actual, str) and fnmatchcase(actual, expected)
    # `True == 1` in Python; an event's `1` does not satisfy a route's `true`.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return expected == actual
    return type(expected) is type(actual) and bool(expected == actual)


def matches(rule: RouteMatch, ctx: dict[str, Any]) -> bool:
    """Whether every condition of `rule` holds for the event; RuleError when its expression
    cannot be evaluated on this event (a missing field, a wrong type): the route then does
    not act, and the record says why."""
    for field, pattern in (("type", rule.type), ("source", rule.source), ("subject", rule.subject)):
        if pattern is None:
            continue
        value = ctx.get(field)
        if not isinstance(value, str) or not fnmatchcase(value, pattern):
            return False
    for path, expected in rule.data.items():
        if not _same(expected, lookup(ctx, f"data.{path}")):
            return False
    if rule.expression is not None:
        return evaluate(compile_rule(rule.expression), cel.Context(variables=ctx))
    return True


def check_expression(expression: str) -> str | None:
    """Why `expression` cannot be a route's condition, or None."""
    try:
        compile_rule(expression)
    except RuleError as err:
        return str(err)
    return None


# ----------------------------------------------------------------------------- templates


def placeholders(value: str) -> list[str]:
    return [m.strip() for m in PLACEHOLDER.findall(value)]


def check_placeholders(template: Any, where: str = "input") -> list[dict[str, str]]:
    """Placeholders that can never be filled: not a dotted path from one of `ROOTS`."""
    problems: list[dict[str, str]] = []
    if isinstance(template, dict):
        for key, item in template.items():
            problems += check_placeholders(item, f"{where}.{key}")
    elif isinstance(template, list):
        for index, item in enumerate(template):
            problems += check_placeholders(item, f"{where}.{index}")
    elif isinstance(template, str):
        for path in placeholders(template):
            if not _PATH.match(path) or path.split(".")[0] not in ROOTS:
                problems.append(
                    {
                        "field": where,
                        "message": f"${{{path}}} is not a dotted path from one of "
                        f"{', '.join(ROOTS)}",
                    }
                )
    return problems


def render(template: Any, ctx: dict[str, Any]) -> Any:
    """The template filled from the event. A string that is one placeholder takes the value
    as it is (a number stays a number); placeholders within text take its text."""
    if isinstance(template, dict):
        return {key: render(item, ctx) for key, item in template.items()}
    if isinstance(template, list):
        return [render(item, ctx) for item in template]
    if not isinstance(template, str) or "${" not in template:
        return template
    whole = PLACEHOLDER.fullmatch(template)
    if whole is not None:
        return _value(ctx, whole.group(1).strip())

    def text(match: re.Match[str]) -> str:
        value = _value(ctx, match.group(1).strip())
        if isinstance(value, dict | list):
            raise TemplateError(f"${{{match.group(1)}}} is not a scalar; it cannot go in text")
        if value is None:
            return ""
        return str(value).lower() if isinstance(value, bool) else str(value)

    return PLACEHOLDER.sub(text, template)


def _value(ctx: dict[str, Any], path: str) -> Any:
    value = lookup(ctx, path)
    if value is _MISSING:
        raise TemplateError(f"the event has no {path}")
    return value


def _templated_at(template: Any, loc: tuple[int | str, ...]) -> bool:
    """Whether the error at `loc` may be one a filled placeholder mends: it is at or within
    a string that holds one; or it is in one alternative of a union (a part of `loc` that is
    not in the template, such as `PauseStep`, followed by more) of a part that holds one."""
    node = template
    alternative = False
    for index, part in enumerate(loc):
        if isinstance(node, str):
            break
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif index < len(loc) - 1:
            alternative = True
    if isinstance(node, str):
        return "${" in node
    return alternative and _holds_placeholder(node)


def _holds_placeholder(node: Any) -> bool:
    if isinstance(node, str):
        return "${" in node
    if isinstance(node, dict):
        return any(_holds_placeholder(v) for v in node.values())
    if isinstance(node, list):
        return any(_holds_placeholder(v) for v in node)
    return False


def template_problems(model: type[BaseModel], template: dict[str, Any]) -> list[dict[str, str]]:
    """What makes `template` invalid for `model` whatever the event: errors of its parts
    without placeholders (a missing required field, a bad strategy, an unknown key)."""
    problems = check_placeholders(template)
    try:
        model.model_validate(template)
    except ValidationError as err:
        for e in err.errors():
            if _templated_at(template, tuple(e["loc"])):
                continue
            where = ".".join(str(p) for p in ("input", *e["loc"]))
            problems.append({"field": where, "message": e["msg"]})
    return problems
