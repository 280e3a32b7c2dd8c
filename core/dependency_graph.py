"""The graph of component dependencies: cycles, and the order a release deploys in.

Pure functions over `{component: its dependencies}`, shared by the API (a cycle is refused
when a component is registered or changed) and the release workflow (which deploys in waves:
every component of a wave depends only on components of earlier waves, so a wave's
deployments run in parallel).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Graph = Mapping[str, Iterable[str]]


def find_cycle(graph: Graph) -> list[str] | None:
    """A dependency cycle as the path that closes it (`["a", "b", "a"]`), or None.

    Dependencies on names the graph does not hold are leaves. Iterative (no recursion limit
    however deep the chain), in sorted order so the cycle named is the same on every call.
    """
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        pending = [iter(sorted(graph.get(start, ())))]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                pending.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt in done or nxt not in graph:
                continue
            path.append(nxt)
            on_path.add(nxt)
            pending.append(iter(sorted(graph.get(nxt, ()))))
    return None


def waves(graph: Graph, members: Iterable[str]) -> list[list[str]]:
    """`members` in dependency order, grouped in waves (each sorted): a member's wave comes
    after the waves of the members it depends on, directly or through non-members.
    ValueError names a cycle."""
    cycle = find_cycle(graph)
    if cycle is not None:
        raise ValueError(f"dependency cycle: {' -> '.join(cycle)}")
    wanted = set(members)
    memo: dict[str, int] = {}

    def depth(name: str) -> int:
        # Longest chain of member dependencies below `name`, iteratively (deep chains).
        stack = [name]
        while stack:
            top = stack[-1]
            if top in memo:
                stack.pop()
                continue
            below = [d for d in graph.get(top, ()) if d in graph or d in wanted]
            missing = [d for d in below if d not in memo]
            if missing:
                stack.extend(missing)
                continue
            # The number of members on the longest chain below: the wave `top` would be in.
            memo[top] = max((memo[d] + (d in wanted) for d in below), default=0)
            stack.pop()
        return memo[name]

    grouped: dict[int, list[str]] = {}
    for name in wanted:
        grouped.setdefault(depth(name), []).append(name)
    return [sorted(grouped[level]) for level in sorted(grouped)]


def dependents(graph: Graph, name: str) -> list[str]:
    """The components that depend on `name` directly (sorted)."""
    return sorted(c for c, deps in graph.items() if name in set(deps))
