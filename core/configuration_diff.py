"""What changed between two versions of a configuration value, path by path. Secrets are
compared by nothing but their having changed: a diff never carries a secret value."""

from __future__ import annotations

from typing import Any

from core.models.configuration import DiffLine, DiffOp

ABSENT = object()
"""No value at all: before the first version, or after a deletion."""


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if name.isidentifier() else f"{path}[{name!r}]"


def value_diff(before: Any, after: Any, path: str = "$") -> list[DiffLine]:
    """Lines for each path whose value differs; objects are compared member by member,
    anything else (arrays included) as a whole."""
    if before is ABSENT and after is ABSENT:
        return []
    if before is ABSENT:
        return [DiffLine(path=path, op=DiffOp.ADDED, after=after)]
    if after is ABSENT:
        return [DiffLine(path=path, op=DiffOp.REMOVED, before=before)]
    if isinstance(before, dict) and isinstance(after, dict):
        lines: list[DiffLine] = []
        for name in sorted(before.keys() | after.keys()):
            lines += value_diff(
                before.get(name, ABSENT), after.get(name, ABSENT), _child(path, name)
            )
        return lines
    # bool is an int in Python: True == 1 must still count as a change.
    if type(before) is not type(after) or before != after:
        return [DiffLine(path=path, op=DiffOp.CHANGED, before=before, after=after)]
    return []


def secret_diff(before_exists: bool, after_exists: bool) -> list[DiffLine]:
    """The one line a change involving a secret gets: never a value."""
    if not before_exists:
        return [DiffLine(path="$", op=DiffOp.ADDED)]
    if not after_exists:
        return [DiffLine(path="$", op=DiffOp.REMOVED)]
    return [DiffLine(path="$", op=DiffOp.CHANGED)]
