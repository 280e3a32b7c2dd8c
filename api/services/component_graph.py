"""`GET /api/v1/components/graph`: the dependency graph with what runs where, as JSON or as
Graphviz DOT, limited to what the caller may read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.scope_checks import readable
from api.services.dependency_checks import Serving, satisfies, serving
from core.db import components as component_store
from core.models.apikeys import Principal


class NodeEnvironment(BaseModel):
    version: str = Field(description="the version serving (the last succeeded deployment)")
    endpoint: str | None = Field(None, description="the environment's router endpoint")


class GraphNode(BaseModel):
    name: str
    environments: dict[str, NodeEnvironment] = Field(default_factory=dict)


class GraphEdge(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="the component that depends")
    to: str = Field(description="the component it depends on")
    version: str | None = Field(None, description="the version constraint, if any")
    satisfied: dict[str, bool | None] = Field(
        default_factory=dict,
        description="per environment where either runs: whether the dependency's serving "
        "version meets the constraint (null: the dependency is not deployed there)",
    )


class ComponentGraph(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]


async def build(session: AsyncSession, principal: Principal) -> ComponentGraph:
    """The graph; a component, an environment or an edge the caller may not read is left out."""
    may_read = readable(principal)
    components = [c for c in await component_store.list_all(session) if may_read(c.name, None)]
    shown = {c.name for c in components}
    running = {target: s for target, s in (await serving(session)).items() if may_read(*target)}
    nodes = [
        GraphNode(
            name=c.name,
            environments={
                env: NodeEnvironment(version=s.version, endpoint=s.endpoint)
                for (name, env), s in sorted(running.items())
                if name == c.name
            },
        )
        for c in components
    ]
    edges = [
        GraphEdge(
            **{"from": c.name},
            to=d.component,
            version=d.version,
            satisfied=_satisfied(c.name, d.component, d.version, running),
        )
        for c in components
        for d in c.depends_on
        if d.component in shown
    ]
    return ComponentGraph(nodes=nodes, edges=edges)


def _satisfied(
    user: str, dependency: str, constraint: str | None, running: dict[tuple[str, str], Serving]
) -> dict[str, bool | None]:
    envs = sorted({env for (name, env) in running if name in (user, dependency)})
    result: dict[str, bool | None] = {}
    for env in envs:
        serving_there = running.get((dependency, env))
        result[env] = (
            None if serving_there is None else satisfies(serving_there.version, constraint)[0]
        )
    return result


def _quoted(value: str) -> str:
    # DOT's quoted string: only `"` and `\` need escaping; line breaks become `\n` (a
    # centred line in a label), so no value can end the string or the statement.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def to_dot(graph: ComponentGraph) -> str:
    """The graph in Graphviz DOT: each node labelled with what it serves per environment,
    each edge with its constraint; every name and label quoted."""
    lines = ["digraph components {", "  rankdir=LR;", "  node [shape=box];"]
    for node in graph.nodes:
        label = "\n".join(
            [node.name, *(f"{env}: {e.version}" for env, e in node.environments.items())]
        )
        lines.append(f"  {_quoted(node.name)} [label={_quoted(label)}];")
    for edge in graph.edges:
        attrs = f" [label={_quoted(edge.version)}]" if edge.version else ""
        lines.append(f"  {_quoted(edge.from_)} -> {_quoted(edge.to)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"
