"""Analysis conditions: what they mean, and what a user is told when one is wrong."""

from __future__ import annotations

import math
import time

import pytest

from core.conditions import MAX_LENGTH, ConditionError, evaluate, validate

NAN = float("nan")
INF = float("inf")


@pytest.mark.parametrize(
    ("expression", "result", "expected"),
    [
        # Argo Rollouts' own examples, and the shapes users copy from them.
        ("result > 0.05", 0.06, True),
        ("result > 0.05", 0.05, False),
        ("result <= 0.01", 0.01, True),
        ("result <= 0.01", 0.011, False),
        ("result <= 0.01 and result >= 0", 0.005, True),
        ("result <= 0.01 and result >= 0", -0.5, False),
        ("result[0] >= 0.95", [0.97, 0.1], True),
        ("result[0] >= 0.95", [0.94], False),
        ("max(result) < 1000", [10, 999.9], True),
        ("max(result) < 1000", [10, 1000], False),
        ("avg(result) < 250 and len(result) > 0", [100, 200, 300], True),
        ("avg(result) < 250 and len(result) > 0", [300, 400], False),
        ("result == 1 or result == 2", 2, True),
        ("result != 0", 0, False),
    ],
)
def test_argo_style_conditions(
    expression: str, result: float | list[float], expected: bool
) -> None:
    assert evaluate(expression, result) is expected


@pytest.mark.parametrize(
    ("expression", "result", "expected"),
    [
        ("0 <= result < 0.1", 0.05, True),
        ("0 <= result < 0.1", 0.1, False),
        ("0 <= result < 0.1", -0.01, False),
        ("1 < 2 < result <= 4", 4, True),
        ("not (result > 1)", 0.5, True),
        ("not (result > 1)", 2, False),
        ("not result", 0, True),
        ("-result < -1", 2, True),
        ("+result == 3", 3, True),
        ("(result + 1) * 2 == 6", 2, True),
        ("result / 4 == 0.5", 2, True),
        ("result % 3 == 1", 7, True),
        ("result - 1 > 0", 1, False),
        ("result > 1e-3", 0.002, True),
        ("result < 2.5E2", 249, True),
        ("True", None, True),
        ("False or result > 1", 2, True),
        ("result == True", True, True),
        ("result", 0.3, True),
        ("result", 0, False),
        ("result[-1] == 3", [1, 2, 3], True),
        ("result[1] + result[2] == 5", [1, 2, 3], True),
        ("min(result) > 0", [1, 2], True),
        ("sum(result) == 6", [1, 2, 3], True),
        ("abs(result) < 0.1", -0.05, True),
        ("abs(result[0] - result[1]) < 0.1", [1.0, 1.05], True),
        ("avg(result) == 2", [1, 2, 3], True),
        ("len(result) == 3", [1, 2, 3], True),
        ("  result > 1  ", 2, True),
        ("(result > 1\n and result < 3)", 2, True),
    ],
)
def test_operators_chains_functions(
    expression: str, result: float | list[float] | None, expected: bool
) -> None:
    assert evaluate(expression, result) is expected


def test_a_single_value_is_a_list_of_one() -> None:
    # Argo's Prometheus conditions say `result[0]`; built-in metrics measure one number.
    assert evaluate("result[0] >= 0.95", 0.97) is True
    assert evaluate("result[-1] < 1", 0.5) is True
    assert evaluate("max(result) < 1000 and len(result) == 1", 12.0) is True
    assert evaluate("avg(result) == 4", 4) is True


def test_and_or_short_circuit_so_guards_work() -> None:
    assert evaluate("len(result) > 0 and result[0] > 1", []) is False
    assert evaluate("len(result) == 0 or result[0] > 1", []) is True
    assert evaluate("len(result) == 0 or avg(result) < 1", []) is True
    assert evaluate("result == 0 or 1 / result > 2", 0) is True


def test_a_chain_stops_at_the_first_false_comparison() -> None:
    # `result[5]` is out of range, but is never reached.
    assert evaluate("1 > 2 > result[5]", [1]) is False


def test_empty_lists() -> None:
    assert evaluate("len(result) == 0", []) is True
    assert evaluate("sum(result) == 0", []) is True
    for name in ("min", "max", "avg"):
        with pytest.raises(ConditionError, match=rf"{name}\(\) of an empty list"):
            evaluate(f"{name}(result) < 1", [])


def test_nan_and_infinity() -> None:
    assert evaluate("is_nan(result)", NAN) is True
    assert evaluate("is_nan(result)", 0.5) is False
    assert evaluate("is_nan(result[1])", [1.0, NAN]) is True
    assert evaluate("not is_nan(result) and result < 0.05", 0.01) is True
    # Like Argo (and IEEE 754): every comparison with NaN is false, except `!=`.
    assert evaluate("result > 0.05", NAN) is False
    assert evaluate("result <= 0.05", NAN) is False
    assert evaluate("result != result", NAN) is True
    assert evaluate("result > 1e308", INF) is True
    assert evaluate("is_nan(result - result)", INF) is True
    # Sums follow IEEE 754 as well, rather than failing.
    assert evaluate("is_nan(sum(result))", [INF, -INF]) is True
    assert evaluate("sum(result) > 1e308 and avg(result) > 1e307", [1e308, 1e308]) is True
    with pytest.raises(ConditionError, match="is NaN, neither true nor false.*is_nan"):
        evaluate("result", NAN)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", r"unknown function '__import__' in .* at column 1; functions are"),
        ("__import__('os').system('true')", r"calling anything but a function name"),
        ("result.__class__", r"attribute access \(`\.`\) is not allowed in 'result.__class__'"),
        ("result.real > 0", r"attribute access"),
        ("open('x')", r"unknown function 'open'.*len, min, max, sum, avg, abs, is_nan"),
        ("eval('1')", r"unknown function 'eval'"),
        ("result()", r"unknown function 'result'"),
        ("len(result)(1)", r"calling anything but a function name is not allowed"),
        ("[x for x in result]", r"a comprehension is not allowed"),
        ("all(v < 1 for v in result)", r"unknown function 'all'"),
        ("max(v for v in result)", r"a generator expression is not allowed"),
        ("'a' < 'b'", r"a string is not allowed in .*; conditions work on numbers"),
        ("result == b'x'", r"a string is not allowed"),
        ("f'{result}' == 1", r"an f-string is not allowed"),
        ("2 ** 1000000", r"operator `\*\*` is not allowed in '2 \*\* 1000000'.*use \+ - \* / %"),
        ("result // 2 == 0", r"operator `//` is not allowed"),
        ("result & 1", r"operator `&` is not allowed"),
        ("~result", r"operator `~` is not allowed"),
        ("result in [1, 2]", r"operator `in` is not allowed"),
        ("result is None", r"operator `is` is not allowed"),
        ("lambda: 1", r"lambda is not allowed"),
        ("(x := 1)", r"assignment \(`:=`\) is not allowed"),
        ("[1, 2][0] > 1", r"a list literal is not allowed"),
        ("{1: 2}", r"a dict literal is not allowed"),
        ("{1, 2}", r"a set literal is not allowed"),
        ("(1, 2)", r"a tuple is not allowed"),
        ("max(*result)", r"`\*` unpacking is not allowed"),
        ("max(result, key=abs)", r"max\(\) takes exactly one argument"),
        ("len()", r"len\(\) takes exactly one argument"),
        ("result if result else 1", r"`x if c else y` is not allowed"),
        ("result[0:2]", r"a slice is not allowed.*index with a whole number, e.g. result\[0\]"),
        ("result[0.5]", r"this index is not allowed"),
        ("result[True]", r"this index is not allowed"),
        ("result[len(result) - 1]", r"this index is not allowed"),
        ("result > 1j", r"1j is not allowed"),
        ("result == None", r"None is not allowed"),
        ("result == ...", r"Ellipsis is not allowed"),
        (
            "reslt > 1",
            r"^unknown name 'reslt' in 'reslt > 1' at column 1; only `result` is defined$",
        ),
        ("result > x", r"unknown name 'x' in 'result > x' at column 10"),
        ("result >", r"syntax error in 'result >'"),
        ("result > > 1", r"syntax error in 'result > > 1' at column 10"),
        ("result = 1", r"syntax error"),
        ("import os", r"syntax error"),
        ("result > 1; result < 2", r"syntax error"),
        ("'\\x41' == 'A'", r"a backslash is not allowed"),
        ("result\x00", r"null bytes"),
        ("", r"^the condition is empty$"),
        ("  \n ", r"^the condition is empty$"),
        ("-" * 60 + "result", r"nesting deeper than 50 levels"),
        ("(" * 300 + "1" + ")" * 150, r"syntax error|characters"),
    ],
)
def test_rejected_with_a_clear_message(expression: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        validate(expression)
    # Evaluation refuses the same way, whatever the result.
    with pytest.raises(ConditionError, match=message):
        evaluate(expression, 1.0)


def test_length_limit() -> None:
    longest = "result > " + "0" * (MAX_LENGTH - len("result > "))
    validate(longest)
    assert evaluate(longest, 1) is True
    with pytest.raises(ConditionError, match=f"has {MAX_LENGTH + 1} characters; at most 500"):
        validate(longest + "0")


def test_no_expression_can_make_a_huge_number_or_hang() -> None:
    big = "9" * 240 + " * " + "9" * 240
    started = time.perf_counter()
    assert evaluate(f"{big} > result", 1) is True
    with pytest.raises(ConditionError, match="cannot compute .*int too large to convert to float"):
        evaluate(f"{big} * 1.5 > result", 1)
    assert evaluate("1e308 * 10 > result", 1) is True  # a float overflows to inf, not an error
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("expression", "result", "message"),
    [
        ("result > 1", None, r"`result` has no value in 'result > 1' at column 1"),
        ("is_nan(result)", None, r"`result` has no value"),
        ("result[3] > 1", [1, 2], r"index 3 is out of range for 2 values in 'result\[3\] > 1'"),
        ("result[-2] > 1", [1], r"index -2 is out of range for 1 value in"),
        ("result[1] > 1", 0.5, r"index 1 is out of range for 1 value"),
        ("1 / result > 1", 0, r"cannot compute 1 / result: .*division by zero in '1 / result > 1'"),
        ("result % 0 == 1", 3, r"cannot compute result % 0: integer modulo by zero"),
        ("result > 0.05", [0.1], r"result is a list where a number is needed in 'result > 0.05';"
         r" use e.g. result\[0\] or max\(result\)"),
        ("result + 1 > 2", [1, 2], r"result is a list where a number is needed"),
        ("abs(result) < 1", [0.5], r"result is a list where a number is needed"),
        ("is_nan(result)", [NAN], r"result is a list where a number is needed"),
        ("result", [1], r"result is a list, not true or false in 'result'; compare it"),
        ("not result", [1], r"result is a list, not true or false"),
        ("result and True", [], r"result is a list, not true or false"),
        ("0 / 0.0 < 1", 1, r"cannot compute 0 / 0.0"),
    ],
)  # fmt: skip
def test_cannot_be_evaluated(
    expression: str, result: float | list[float] | None, message: str
) -> None:
    validate(expression)  # well-formed: only this result makes it fail
    with pytest.raises(ConditionError, match=message):
        evaluate(expression, result)


@pytest.mark.parametrize("result", ["0.5", {"a": 1}, ["x"], [None], (1, 2)])
def test_a_result_that_is_not_numbers_is_refused(result: object) -> None:
    with pytest.raises(ConditionError, match="`result` must be a number or a list of numbers"):
        evaluate("result > 0", result)  # type: ignore[arg-type]


def test_long_subexpressions_are_shortened_in_messages() -> None:
    expression = "(result + 1000000 + 2000000 + 3000000 + 4000000) / 0 > 1"
    with pytest.raises(ConditionError) as caught:
        evaluate(expression, 1)
    assert str(caught.value) == (
        "cannot compute (result + 1000000 + 2000000 + 3000000...: division by zero"
        f" in {expression!r}"
    )


def test_condition_error_is_a_value_error() -> None:
    # So a pydantic validator that calls `validate` reports it as a validation error.
    assert issubclass(ConditionError, ValueError)


def test_the_same_condition_judges_each_result_afresh() -> None:
    # Parsed conditions are cached; results must never be.
    assert [evaluate("result > 0.05", v) for v in (0.1, 0.01, 0.1)] == [True, False, True]
    for _ in range(2):  # a refused condition stays refused
        with pytest.raises(ConditionError, match="unknown name"):
            evaluate("reslt > 0.05", 0.1)


def test_results_are_exact_where_python_is() -> None:
    assert evaluate("sum(result) == 0.6", [0.1, 0.2, 0.3]) is True  # fsum, not naive addition
    assert math.isclose(0.1 + 0.2 + 0.3, 0.6) and 0.1 + 0.2 + 0.3 != 0.6
