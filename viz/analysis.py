"""Questions answered on the networkx graph: depth, dead nodes, unused parameters, sizes."""

from __future__ import annotations

from typing import Any

import networkx as nx

__all__ = ["graph_depth", "dead_nodes", "unused_parameters", "parameter_count"]


def graph_depth(g: nx.DiGraph) -> int:
    """The most ops on any path from a leaf to an output (node ids are a topological order)."""
    depth: dict[int, int] = {}
    for n in sorted(g.nodes):
        below = max((depth[p] for p in g.predecessors(n)), default=0)
        depth[n] = below + (g.nodes[n]["kind"] == "op")
    return max(depth.values(), default=0)


def dead_nodes(g: nx.DiGraph) -> list[int]:
    """Nodes whose value never reaches an output (records computed for nothing), in tape order."""
    return [n for n, d in g.nodes(data=True) if d.get("dead")]


def unused_parameters(g: nx.DiGraph, model: Any = None) -> list[str]:
    """Names of parameters that got no gradient, do not reach an output, or never ran.

    With ``model`` (anything with ``named_parameters()``), parameters of the model that the
    graph never used are included too, in the model's order.
    """
    found = []
    in_graph = set()
    for _, d in g.nodes(data=True):
        if d["kind"] != "parameter":
            continue
        in_graph.add(d["name"])
        if d.get("no_grad") or d.get("dead"):
            found.append(d["name"])
    if model is not None:
        found += [name for name, _ in model.named_parameters() if name not in in_graph]
    return found


def parameter_count(g: nx.DiGraph) -> dict[str, int]:
    """Parameter elements per module path, each parameter once, a module counting its children.

    The key ``""`` holds the total of every parameter in the graph.
    """
    modules = g.graph.get("modules", [])
    counts: dict[str, int] = {"": 0}
    for _, d in g.nodes(data=True):
        if d["kind"] != "parameter":
            continue
        counts[""] += d["numel"]
        paths = set()
        s = d.get("scope")
        while s is not None:
            if modules[s]["path"]:
                paths.add(modules[s]["path"])
            s = modules[s]["parent"]
        for p in sorted(paths):
            counts[p] = counts.get(p, 0) + d["numel"]
    return counts
