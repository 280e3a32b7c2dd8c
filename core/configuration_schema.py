"""Checking a component's effective configuration, the object {key: value}, against the JSON
Schema the component declares (`config_schema`).

Secret values are not in the store: one whose value is not at hand (every secret but the one
being written) is checked by presence only, and a problem inside a secret's value is told
by its rule and path, never with the value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from referencing.exceptions import Unresolvable

MAX_PROBLEMS = 20
_UNKNOWN_SECRET = "<secret>"


@dataclass(frozen=True)
class SchemaProblem:
    """One way the effective set breaks the schema."""

    key: str | None
    path: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "path": self.path, "rule": self.rule, "message": self.message}


def _rule(keyword: str, value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str)
    return f"{keyword}: {text if len(text) <= 200 else text[:200] + '...'}"


def check(
    schema: dict[str, Any], values: dict[str, Any], secrets: set[str], hidden: set[str]
) -> list[SchemaProblem]:
    """Problems of `values` against `schema` (at most MAX_PROBLEMS). `secrets` are keys whose
    values must not appear in a message; `hidden` those whose value is not known."""
    instance = {k: (_UNKNOWN_SECRET if k in hidden else v) for k, v in values.items()}
    found: list[SchemaProblem] = []
    try:
        errors = Draft202012Validator(schema).iter_errors(instance)
        for err in errors:
            where = list(err.absolute_path)
            key = str(where[0]) if where else None
            if key is not None and key in hidden:
                continue  # a placeholder, not the value: nothing is known about it
            path = "$" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in where)
            rule = _rule(str(err.validator), err.validator_value)
            # A message may quote the instance it is about: at the top, that is every value.
            quotes_secret = key in secrets if key is not None else bool(secrets - hidden)
            message = f"breaks the rule {rule}" if quotes_secret else err.message[:300]
            found.append(SchemaProblem(key, path, rule, message))
            if len(found) >= MAX_PROBLEMS:
                break
    except Unresolvable as err:
        found.append(
            SchemaProblem(None, "$", "$ref", f"the schema refers to {err!s:.200}, unknown here")
        )
    return found
