"""The version rule of dependencies, and DOT that no name can break out of."""

from __future__ import annotations

from api.services.component_graph import ComponentGraph, GraphEdge, GraphNode, to_dot
from api.services.dependency_checks import satisfies


def test_versions_against_constraints() -> None:
    assert satisfies("2.1", ">=2.0") == (True, None)
    assert satisfies("anything", None) == (True, None)
    assert satisfies("2.0rc1", ">=2.0rc1,<3") == (True, None)
    ok, why = satisfies("1.9", ">=2.0")
    assert not ok and why == "version 1.9 does not satisfy >=2.0"
    ok, why = satisfies("blue", ">=2.0")
    assert not ok and why is not None and "'blue' is not a PEP 440 version" in why


def test_dot_quotes_every_name_and_label() -> None:
    hostile = 'a" -> "evil"; x [label="\\'
    graph = ComponentGraph(
        nodes=[GraphNode(name=hostile), GraphNode(name="api")],
        edges=[GraphEdge(**{"from": hostile}, to="api", version='>=1"\n}')],
    )
    dot = to_dot(graph)
    lines = dot.splitlines()
    assert lines[0] == "digraph components {" and lines[-1] == "}"
    # One statement per line, the hostile text inside one quoted string each time.
    escaped = '"a\\" -> \\"evil\\"; x [label=\\"\\\\"'
    assert f"  {escaped} [label={escaped}];" in lines
    assert f'  {escaped} -> "api" [label=">=1\\"\\n}}"];' in lines
    assert len(lines) == 7
