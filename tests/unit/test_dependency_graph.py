"""The dependency graph: cycles named as paths, and release waves in dependency order."""

from __future__ import annotations

import pytest

from core.dependency_graph import dependents, find_cycle, waves

APP = {"db-migrate": [], "api": ["db-migrate"], "web": ["api"], "worker": ["db-migrate"]}


def test_no_cycle_in_a_chain_or_a_diamond() -> None:
    assert find_cycle(APP) is None
    assert find_cycle({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}) is None


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": ["a"]}, ["a", "a"]),
        ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
        ({"x": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
    ],
)
def test_a_cycle_is_named_as_the_path_that_closes_it(
    graph: dict[str, list[str]], cycle: list[str]
) -> None:
    assert find_cycle(graph) == cycle


def test_dependencies_on_unknown_names_are_leaves() -> None:
    assert find_cycle({"a": ["ghost"]}) is None
    assert waves({"a": ["ghost"]}, ["a"]) == [["a"]]


def test_waves_follow_the_dependencies_and_group_independent_components() -> None:
    assert waves(APP, APP) == [["db-migrate"], ["api", "worker"], ["web"]]


def test_waves_keep_the_order_through_components_not_released() -> None:
    # api is not in the release, but web still goes after db-migrate, which api needs.
    assert waves(APP, ["web", "db-migrate"]) == [["db-migrate"], ["web"]]
    assert waves(APP, ["web", "worker"]) == [["web", "worker"]]


def test_waves_refuse_a_cycle() -> None:
    with pytest.raises(ValueError, match="a -> b -> a"):
        waves({"a": ["b"], "b": ["a"]}, ["a"])


def test_a_deep_chain_needs_no_recursion() -> None:
    chain = {f"c{i}": [f"c{i + 1}"] for i in range(5000)}
    chain["c5000"] = []
    assert find_cycle(chain) is None
    order = waves(chain, chain)
    assert order[0] == ["c5000"] and order[-1] == ["c0"] and len(order) == 5001


def test_dependents() -> None:
    assert dependents(APP, "db-migrate") == ["api", "worker"]
    assert dependents(APP, "web") == []
