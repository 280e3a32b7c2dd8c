"""The small, safe language of analysis conditions (`result > 0.05`, `max(result) < 1000`).

A Pythonic subset of Argo Rollouts' conditions. An expression is parsed with `ast.parse`, its
tree is checked against a whitelist of node types, and this module evaluates it itself:
nothing is ever compiled or run as code. It is pure, deterministic and stdlib-only, so
workflows can use it inside Temporal's sandbox. There is no `**`: with `*` alone and at most
500 characters, no expression can build a number big enough to stall a workflow.
"""

from __future__ import annotations

import ast
import math
import operator
import sys
from collections.abc import Callable
from functools import lru_cache

MAX_LENGTH = 500
# Literals beyond the largest float are refused: a float cannot hold them (`1e999` parses as
# inf; an integer of 400 digits overflows when judged), and no measurement is that large.
MAX_NUMBER = sys.float_info.max
# Bounds the recursion of checking and evaluating, far below any stack limit in a worker.
MAX_DEPTH = 50
FUNCTIONS = ("len", "min", "max", "sum", "avg", "abs", "is_nan")

Value = float | list[float]

_BINARY: dict[type[ast.AST], Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Mod: operator.mod,
}  # fmt: skip
_COMPARE: dict[type[ast.AST], Callable[[float, float], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}  # fmt: skip
_ALLOWED_OPS = (*_BINARY, *_COMPARE, ast.Not, ast.USub, ast.UAdd, ast.And, ast.Or)
_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Pow: "**", ast.FloorDiv: "//", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.Invert: "~",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access (`.`)", ast.Lambda: "lambda", ast.List: "a list literal",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator expression",
    ast.Tuple: "a tuple", ast.Dict: "a dict literal", ast.Set: "a set literal",
    ast.NamedExpr: "assignment (`:=`)", ast.JoinedStr: "an f-string", ast.IfExp: "`x if c else y`",
    ast.Starred: "`*` unpacking", ast.Call: "calling anything but a function name",
}  # fmt: skip


class ConditionError(ValueError):
    """A condition that cannot be accepted or evaluated; the message says what and where."""


def _error(
    problem: str, source: str, node: ast.AST | None = None, hint: str = ""
) -> ConditionError:
    where = f" at column {node.col_offset + 1}" if isinstance(node, ast.expr) else ""
    return ConditionError(f"{problem} in {source!r}{where}" + (f"; {hint}" if hint else ""))


def _text(source: str, node: ast.expr) -> str:
    text = ast.get_source_segment(source, node) or "the expression"
    return text if len(text) <= 40 else text[:37] + "..."  # keeps messages readable


def _check(node: ast.expr, source: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _error(f"nesting deeper than {MAX_DEPTH} levels", source)
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, bool | int | float):  # refuses complex numbers too
            kind = "a string" if isinstance(node.value, str | bytes) else repr(node.value)
            raise _error(f"{kind} is not allowed", source, node, "conditions work on numbers")
        if not _finite(node.value):  # `1e999` parses as inf; `9` * 400 overflows a float
            hint = f"numbers must be finite and at most {MAX_NUMBER:.3g} in size"
            raise _error(f"the number {_text(source, node)} is too large", source, node, hint)
    elif isinstance(node, ast.Name):
        if node.id != "result":
            raise _error(f"unknown name {node.id!r}", source, node, "only `result` is defined")
    elif isinstance(node, ast.UnaryOp | ast.BinOp | ast.BoolOp | ast.Compare):
        for op in node.ops if isinstance(node, ast.Compare) else [node.op]:
            if not isinstance(op, _ALLOWED_OPS):
                symbol = _SYMBOLS.get(type(op), type(op).__name__)
                allowed = "use + - * / %, comparisons, and, or, not"
                raise _error(f"operator `{symbol}` is not allowed", source, node, allowed)
    elif isinstance(node, ast.Subscript):
        if _index(node.slice) is None:
            what = "a slice" if isinstance(node.slice, ast.Slice) else "this index"
            hint = "index with a whole number, e.g. result[0] or result[-1]"
            raise _error(f"{what} is not allowed", source, node, hint)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id not in FUNCTIONS:
            known = "functions are " + ", ".join(FUNCTIONS)
            raise _error(f"unknown function {node.func.id!r}", source, node, known)
        if node.keywords or len(node.args) != 1:
            raise _error(f"{node.func.id}() takes exactly one argument", source, node)
    else:
        what = _FORBIDDEN.get(type(node), f"`{type(node).__name__}`")
        raise _error(f"{what} is not allowed", source, node)
    # A call's function name was checked above; every other child is an operand.
    children = node.args if isinstance(node, ast.Call) else ast.iter_child_nodes(node)
    for child in children:
        if isinstance(child, ast.expr):
            _check(child, source, depth + 1)


def _finite(value: float | int | bool) -> bool:
    try:
        return math.isfinite(value) and abs(value) <= MAX_NUMBER
    except OverflowError:  # an int too large for a float
        return False


def _index(node: ast.expr) -> int | None:
    """The whole number of `[0]` or `[-1]`; None for anything else."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -1, node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:  # not a bool
        return sign * node.value
    return None


@lru_cache(maxsize=512)
def _parse(expression: str) -> tuple[str, ast.expr]:
    # Cached: a workflow judges the same few conditions at every measurement.
    source = expression.strip()  # eval mode refuses leading blanks as an indent
    if not source:
        raise ConditionError("the condition is empty")
    if len(expression) > MAX_LENGTH:
        raise ConditionError(
            f"the condition has {len(expression)} characters; at most {MAX_LENGTH}"
        )
    if "\\" in source:  # escapes make the parser warn, and no condition needs one
        raise _error("a backslash is not allowed", source)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as e:
        where = f" at column {e.offset}" if e.offset and e.offset > 0 else ""
        raise ConditionError(f"syntax error in {source!r}{where}: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError) as e:  # null bytes, absurd nesting
        raise ConditionError(f"cannot parse {source!r}: {e}") from None
    _check(tree.body, source, 0)
    return source, tree.body


def validate(expression: str) -> None:
    """Raise `ConditionError` unless `expression` is a well-formed, allowed condition."""
    _parse(expression)


def evaluate(expression: str, result: float | int | bool | list[float] | None) -> bool:
    """Judge `expression` against a measured `result`: a number, or a list of numbers.

    Raises `ConditionError` when the expression is invalid or cannot be evaluated on this
    result: no value, an index out of range, division by zero, a list where a number is needed.
    """
    source, body = _parse(expression)
    values = result if isinstance(result, list) else [result]
    if result is not None and not all(isinstance(v, int | float) for v in values):
        raise ConditionError(f"`result` must be a number or a list of numbers, not {result!r}")
    evaluator = _Evaluator(source, result)
    try:
        return evaluator.truth(evaluator.calc(body), body)
    except (ArithmeticError, RecursionError, MemoryError) as e:
        # Whatever the result holds, judging it must fail as a condition error (a failed
        # measurement), never as an exception that escapes into workflow code.
        raise _error(f"cannot evaluate: {type(e).__name__}: {e}", source) from None


def _total(values: list[float]) -> float:
    try:
        return math.fsum(values)  # exact, so `sum(result) == 0.6` holds for [0.1, 0.2, 0.3]
    except (OverflowError, ValueError):  # fsum raises where IEEE 754 gives inf or NaN
        return sum(values)


class _Evaluator:
    def __init__(self, source: str, result: Value | None) -> None:
        self.source = source
        self.result = result

    def truth(self, value: Value, node: ast.expr) -> bool:
        text = _text(self.source, node)
        if isinstance(value, list):
            hint = "compare it, e.g. max(result) < 1"
            raise _error(f"{text} is a list, not true or false", self.source, hint=hint)
        if isinstance(value, float) and math.isnan(value):
            raise _error(
                f"{text} is NaN, neither true nor false", self.source, hint="test is_nan()"
            )
        return bool(value)

    def number(self, node: ast.expr) -> float:
        value = self.calc(node)
        if isinstance(value, list):
            text = _text(self.source, node)
            hint = f"use e.g. {text}[0] or max({text})"
            raise _error(f"{text} is a list where a number is needed", self.source, hint=hint)
        return value

    def items(self, node: ast.expr) -> list[float]:
        # One value is a list of one, so Argo's `result[0]` works on single-value metrics too.
        value = self.calc(node)
        return value if isinstance(value, list) else [value]

    def calc(self, node: ast.expr) -> Value:
        try:
            return self._calc(node)
        except ArithmeticError as e:  # division by zero; an int too large for a float
            raise _error(f"cannot compute {_text(self.source, node)}: {e}", self.source) from None

    def _calc(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int | float)  # by _check
            return node.value
        if isinstance(node, ast.Name):
            if self.result is None:
                raise _error("`result` has no value", self.source, node)
            return self.result
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return not self.truth(self.calc(node.operand), node.operand)
            value = self.number(node.operand)
            return -value if isinstance(node.op, ast.USub) else +value
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self.number(node.left), self.number(node.right))
        if isinstance(node, ast.BoolOp):  # short-circuits: `len(result) > 0 and result[0] < 1`
            stop = isinstance(node.op, ast.Or)  # the truth at which `or`/`and` stops
            return (
                stop if any(self.truth(self.calc(v), v) is stop for v in node.values) else not stop
            )
        if isinstance(node, ast.Compare):  # a chain, left to right, like Python's
            left = self.number(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.number(comparator)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Subscript):
            values, index = self.items(node.value), _index(node.slice)
            assert index is not None  # by _check
            if not -len(values) <= index < len(values):
                count = f"{len(values)} value{'' if len(values) == 1 else 's'}"
                raise _error(f"index {index} is out of range for {count}", self.source, node)
            return values[index]
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)  # by _check
        name, arg = node.func.id, node.args[0]
        if name in ("abs", "is_nan"):
            value = self.number(arg)
            return abs(value) if name == "abs" else math.isnan(value)
        values = self.items(arg)
        if name in ("len", "sum"):
            return len(values) if name == "len" else _total(values)
        if not values:
            raise _error(f"{name}() of an empty list", self.source, node)
        if name == "avg":
            return _total(values) / len(values)
        return min(values) if name == "min" else max(values)
