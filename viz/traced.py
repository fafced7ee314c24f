"""Draw a traced step's graph (`tg.trace`): the torch.fx graph its executors run, forward and backward.

Inputs are blue and parameters (captured tensors) green, as in `viz.draw` of a tape; forward ops
are grey boxes, the backward pass's rule calls and sums orange, in a cluster of their own; the
outputs (the loss and each parameter's gradient) are boxes with a bold border. Node names are
the graph's (``linear_0``, ``linear_0_vjp1``: op name and module path), so the picture and
``print(step.source())`` name the same things.
"""

from __future__ import annotations

from typing import Any

import torch.fx

from . import _graphviz as graphviz
from .dot import STYLES
from .render import TapeDigraph, styled_digraph

__all__ = ["draw_traced"]

_BACKWARD = {"shape": "box", "style": "rounded,filled", "fillcolor": "#ffe0b2"}


def draw_traced(source: Any, rankdir: str = "TB", title: str | None = None) -> TapeDigraph:
    """The graph of a traced step (a `tg.trace` result, after its first call, or its
    `torch.fx.GraphModule`) as a `graphviz.Digraph`; ``.source`` is the DOT text."""
    gm = source.graph_module() if hasattr(source, "graph_module") else source
    if not isinstance(gm, torch.fx.GraphModule):
        raise TypeError(f"viz.draw_traced: expected a tg.trace step or a torch.fx.GraphModule, got {type(gm).__name__}")
    dot = styled_digraph("tapegrad_trace", rankdir, title)
    backward = graphviz.Digraph("cluster_backward", graph_attr={"label": "backward", "style": "rounded"})
    outputs: set[str] = set()
    for node in gm.graph.nodes:
        if node.op == "output":
            outputs = {a.name for a in node.args[0] if isinstance(a, torch.fx.Node)}
    for node in gm.graph.nodes:
        if node.op == "output":
            continue
        kind = node.meta.get("tapegrad", ("", "", ""))[0]
        attrs = _attrs(node, kind)
        if node.name in outputs:
            attrs = {**attrs, "penwidth": "2"}
        (backward if kind == "vjp" or node.op == "call_function" and not kind else dot).node(
            node.name, graphviz.nohtml(_label(node, kind)), **attrs
        )
        for arg in node.all_input_nodes:
            dot.edge(arg.name, node.name)
    dot.subgraph(backward)
    return dot


def _attrs(node: torch.fx.Node, kind: str) -> dict[str, str]:
    if node.op == "placeholder":
        return STYLES["parameter" if node.name.startswith("captured") else "input"]
    if node.op == "get_attr":
        return STYLES["constant"]
    return _BACKWARD if kind in ("vjp", "") else STYLES["op"]


def _label(node: torch.fx.Node, kind: str) -> str:
    """The node's name, with the rule or function it calls for a call."""
    if node.op != "call_function":
        return node.name
    meta = node.meta.get("tapegrad")
    what = f"{meta[0]} {meta[1]}" if meta else getattr(node.target, "__name__", str(node.target))
    return f"{node.name}\\n{what}"
