"""Which nodes of the networkx graph are drawn as themselves and which merge into one box.

Modules deeper than ``depth`` collapse into their ancestor at ``depth``; when the picture
would still exceed ``max_nodes`` the depth goes down, and below depth 0 runs of nodes in
tape order merge into segments. Everything is iterative and ordered by node id, so the
same graph always gives the same view.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import networkx as nx

__all__ = ["View", "plan"]


class Box:
    """A collapsed group of nodes: a module call ("m", scope) or a run of tape order ("s", k)."""

    __slots__ = ("key", "title", "scope", "members", "in_shapes", "out_shapes", "param_count", "ops")

    def __init__(self, key: tuple, title: str, scope: int | None) -> None:
        self.key = key
        self.title = title
        self.scope = scope  # the cluster the box sits in (None: top level)
        self.members: list[int] = []
        self.in_shapes: list[tuple] = []
        self.out_shapes: list[tuple] = []
        self.param_count = 0
        self.ops: Counter = Counter()


class View:
    """The plan of a picture: each node's representative, the boxes and the open clusters."""

    __slots__ = ("rep", "boxes", "clusters", "depth", "segmented", "forced", "hidden")

    def __init__(self) -> None:
        self.rep: dict[int, tuple] = {}  # node -> ("n", node) or a box key
        self.boxes: dict[tuple, Box] = {}
        self.clusters: list[int] = []  # scope indices drawn as cluster_ subgraphs, in order
        self.depth: int | None = None
        self.segmented = False
        self.forced = False  # max_nodes made it collapse more than asked
        self.hidden: set[int] = set()  # nodes not drawn at all (constants when hidden)

    @property
    def size(self) -> int:
        """How many nodes the picture has."""
        return len({k for n, k in self.rep.items() if n not in self.hidden})


def plan(g: nx.DiGraph, depth: int | None = None, max_nodes: int | None = 500, show_constants: bool = True) -> View:
    """The view of ``g`` at ``depth`` (None: every module open), collapsed to fit ``max_nodes``."""
    modules = g.graph.get("modules", [])
    hidden = set() if show_constants else {n for n, d in g.nodes(data=True) if d["kind"] == "constant"}
    deepest = max((m["depth"] for m in modules), default=-1)
    d = deepest + 1 if depth is None else max(0, min(depth, deepest + 1))
    view = _by_depth(g, modules, d, hidden)
    forced = False
    while max_nodes is not None and view.size > max_nodes and d > 0:
        d -= 1
        forced = True
        view = _by_depth(g, modules, d, hidden)
    if max_nodes is not None and view.size > max_nodes:
        view = _by_segments(g, max_nodes, hidden)
        forced = True
    else:
        view.depth = None if d > deepest else d
    view.forced = forced
    _describe_boxes(g, view)
    return view


def _by_depth(g: nx.DiGraph, modules: list[dict], depth: int, hidden: set[int]) -> View:
    view = View()
    view.hidden = hidden
    ancestor: list[int | None] = []  # each scope's ancestor at `depth` (itself if at it), or None
    for i, m in enumerate(modules):
        if m["depth"] == depth:
            ancestor.append(i)
        elif m["depth"] > depth:
            ancestor.append(ancestor[m["parent"]])
        else:
            ancestor.append(None)
    open_clusters = set()
    for n, data in g.nodes(data=True):
        s = data.get("scope")
        top = None if s is None else ancestor[s]
        if top is None:
            view.rep[n] = ("n", n)
            if s is not None:
                open_clusters.add(s)
            continue
        key = ("m", top)
        if key not in view.boxes:
            view.boxes[key] = Box(key, modules[top]["label"], modules[top]["parent"])
            if modules[top]["parent"] is not None:
                open_clusters.add(modules[top]["parent"])
        view.boxes[key].members.append(n)
        view.rep[n] = key
    for s in list(open_clusters):  # a cluster's ancestors are clusters too
        p = modules[s]["parent"]
        while p is not None and p not in open_clusters:
            open_clusters.add(p)
            p = modules[p]["parent"]
    view.clusters = sorted(open_clusters)
    return view


def _by_segments(g: nx.DiGraph, max_nodes: int, hidden: set[int]) -> View:
    view = View()
    view.hidden = hidden
    view.segmented = True
    outputs = [n for n, d in g.nodes(data=True) if d["kind"] == "output"]
    others = [n for n in g.nodes if n not in hidden and g.nodes[n]["kind"] != "output"]
    per = math.ceil(len(others) / max(1, max_nodes - len(outputs)))
    for i, n in enumerate(others):
        key = ("s", i // per)
        if key not in view.boxes:
            view.boxes[key] = Box(key, "", None)
        view.boxes[key].members.append(n)
        view.rep[n] = key
    for n in outputs:
        view.rep[n] = ("n", n)
    for n in hidden:  # a hidden constant follows its consumer so that no edge leaves from it
        view.rep[n] = ("n", n)
    for box in view.boxes.values():
        box.title = f"nodes {box.members[0]}-{box.members[-1]}"
    return view


def _describe_boxes(g: nx.DiGraph, view: View) -> None:
    if not view.boxes:
        return
    seen_in: dict[tuple, set] = {k: set() for k in view.boxes}
    seen_out: dict[tuple, set] = {k: set() for k in view.boxes}
    for box in view.boxes.values():
        for n in box.members:
            d = g.nodes[n]
            if d["kind"] == "parameter":
                box.param_count += d["numel"]
            elif d["kind"] == "op":
                box.ops[d["op"]] += 1
    for u, v in g.edges:
        if u in view.hidden:
            continue
        ru, rv = view.rep[u], view.rep[v]
        if ru == rv:
            continue
        if rv in view.boxes and u not in seen_in[rv]:
            seen_in[rv].add(u)
            view.boxes[rv].in_shapes.append(g.nodes[u]["out_shape"])
        if ru in view.boxes and u not in seen_out[ru]:
            seen_out[ru].add(u)
            view.boxes[ru].out_shapes.append(g.nodes[u]["out_shape"])


def box_attrs(g: nx.DiGraph, box: Box) -> dict[str, Any]:
    """Whether a box holds a non-finite value and whether all of it is dead."""
    members = [g.nodes[n] for n in box.members]
    return {
        "nonfinite": any(not d.get("finite", True) or not d.get("grad_finite", True) for d in members),
        "dead": all(d.get("dead", False) for d in members),
    }
