"""Draw the networkx graph of a tape as a graphviz picture, deterministic byte for byte.

Ops are labelled with their forward names and output shapes; module calls become
``cluster_`` subgraphs labelled like ``0 (Linear)``; names in the DOT text are node ids in
tape order (never ``id()``), so the same model always gives the same source.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from . import _graphviz as graphviz
from .collapse import View, box_attrs, plan
from .graph import Source, to_networkx
from .render import TapeDigraph, styled_digraph

__all__ = ["draw", "STYLES"]

STYLES: dict[str, dict[str, str]] = {
    "input": {"shape": "ellipse", "style": "filled", "fillcolor": "#bbdefb"},
    "parameter": {"shape": "ellipse", "style": "filled", "fillcolor": "#c8e6c9"},
    "constant": {"shape": "plaintext", "style": "", "fontcolor": "#616161"},
    "op": {"shape": "box", "style": "rounded,filled", "fillcolor": "#f5f5f5"},
    "output": {"shape": "box", "style": "filled", "fillcolor": "#ffcc80"},
    "module": {"shape": "box3d", "style": "filled", "fillcolor": "#fff9c4"},
}
"""Node shape and colour per kind (loss and other outputs are orange, parameters green)."""


def draw(
    source: Source | nx.DiGraph,
    target: Any = None,
    *,
    params: Any = None,
    depth: int | None = None,
    max_nodes: int | None = 500,
    rankdir: str = "TB",
    show_dtype: bool = False,
    show_values: bool = False,
    show_grads: bool | None = None,
    show_constants: bool = True,
    call_sites: bool = False,
    legend: bool = False,
    title: str | None = None,
) -> TapeDigraph:
    """The graph of a tape, a recorded tensor or a `viz.Trace` as a `graphviz.Digraph`.

    ``depth`` collapses modules nested deeper than it into one box each, labelled with its
    in/out shapes and parameter count (0: each top-level module is a box; None: all open).
    ``max_nodes`` lowers the depth, then merges runs of nodes, until the picture fits.
    ``show_grads`` (default: when a backward pass ran) prints gradient norms; NaN/Inf values
    or gradients get a red border; dead records and parameters with no gradient are dashed.
    ``call_sites`` adds each op's source line as a tooltip. Display it in a notebook, or
    write it with `viz.save` (or ``.render``); ``.source`` is the DOT text.
    """
    g = source if isinstance(source, nx.DiGraph) else to_networkx(source, target, params=params, values=show_values)
    if show_grads is None:
        show_grads = bool(g.graph.get("backward"))
    view = plan(g, depth=depth, max_nodes=max_nodes, show_constants=show_constants)
    opts = {"dtype": show_dtype, "values": show_values, "grads": show_grads, "sites": call_sites}
    note = _note(view, max_nodes)
    dot = styled_digraph("tapegrad", rankdir, "\\n".join(t for t in (title, note) if t))
    _emit_nodes(dot, g, view, opts)
    _emit_edges(dot, g, view)
    if legend:
        _emit_legend(dot)
    return dot


def _note(view: View, max_nodes: int | None) -> str:
    if view.segmented:
        return f"collapsed into {len(view.boxes)} segments in tape order to stay under max_nodes={max_nodes}"
    if view.forced:
        return f"modules at depth {view.depth} drawn as boxes to stay under max_nodes={max_nodes}"
    return ""


def _emit_nodes(dot: graphviz.Digraph, g: nx.DiGraph, view: View, opts: dict) -> None:
    modules = g.graph.get("modules", [])
    clusters = {
        s: graphviz.Digraph(f"cluster_{s}", graph_attr={"label": graphviz.nohtml(m["label"]), "style": "rounded"})
        for s, m in ((s, modules[s]) for s in view.clusters)
    }
    placed: set[tuple] = set()
    for n, d in g.nodes(data=True):
        if n in view.hidden:
            continue
        key = view.rep[n]
        if key in placed:
            continue
        placed.add(key)
        if key[0] == "n":
            where, name, attrs = d.get("scope"), f"n{n}", _node_attrs(d, opts)
        else:
            box = view.boxes[key]
            where, name, attrs = box.scope, _box_name(key), _box_attrs(g, box)
        (clusters[where] if where in clusters else dot).node(name, **attrs)
    children: dict[int | None, list[int]] = {}
    for s in view.clusters:
        p = modules[s]["parent"]
        children.setdefault(p if p in clusters else None, []).append(s)
    for s in reversed(view.clusters):  # children have larger indices: attach them first
        for c in children.get(s, []):
            clusters[s].subgraph(clusters[c])
    for c in children.get(None, []):
        dot.subgraph(clusters[c])


def _emit_edges(dot: graphviz.Digraph, g: nx.DiGraph, view: View) -> None:
    done: set[tuple[str, str]] = set()
    for u, v in g.edges:
        if u in view.hidden or v in view.hidden:
            continue
        ru, rv = view.rep[u], view.rep[v]
        if ru == rv:
            continue
        pair = (_rep_name(ru), _rep_name(rv))
        if pair in done:
            continue
        done.add(pair)
        dashed = g.nodes[u].get("dead") or g.nodes[u].get("no_grad")
        dot.edge(*pair, **({"style": "dashed"} if dashed else {}))


def _rep_name(key: tuple) -> str:
    return f"n{key[1]}" if key[0] == "n" else _box_name(key)


def _box_name(key: tuple) -> str:
    return f"{'m' if key[0] == 'm' else 's'}{key[1]}"


def _shape(shape: tuple) -> str:
    return "\u00d7".join(str(s) for s in shape) if shape else "scalar"


def _num(x: float) -> str:
    return f"{x:.3g}"


def _node_attrs(d: dict, opts: dict) -> dict[str, str]:
    kind = d["kind"]
    lines = []
    if kind == "op":
        lines.append(f"{d['op']} ({d['params']})" if d.get("params") else d["op"])
    elif kind == "input":
        lines.append(d["name"] or "input")
    elif kind in ("parameter", "output"):
        lines.append(d["name"] or kind)
    else:
        lines.append(d["name"])
    if kind != "constant" or d["out_shape"]:
        lines.append(_shape(d["out_shape"]))
    if opts["dtype"] and kind != "constant":
        lines.append(d["dtype"])
    if opts["values"] and "value_mean" in d:
        lines.append(f"mean {_num(d['value_mean'])} std {_num(d['value_std'])}")
        lines.append(f"[{_num(d['value_min'])}, {_num(d['value_max'])}]")
    if opts["grads"] and "grad_norm" in d:
        lines.append(f"grad norm {_num(d['grad_norm'])}")
    elif opts["grads"] and d.get("no_grad"):
        lines.append("no gradient")
    attrs = dict(STYLES[kind])
    attrs["label"] = graphviz.nohtml("\\n".join(lines))
    nonfinite = not d.get("finite", True) or not d.get("grad_finite", True)
    _mark(attrs, nonfinite=nonfinite, dashed=bool(d.get("dead") or d.get("no_grad")))
    if opts["sites"] and d.get("call_site"):
        attrs["tooltip"] = graphviz.nohtml(d["call_site"])
    return {k: v for k, v in attrs.items() if v != ""}


def _box_attrs(g: nx.DiGraph, box: Any) -> dict[str, str]:
    lines = [box.title]
    n_ops = sum(box.ops.values())
    if box.key[0] == "s":
        common = ", ".join(f"{op}\u00d7{c}" for op, c in sorted(box.ops.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
        lines.append(f"{n_ops} ops: {common}" if common else f"{n_ops} ops")
    else:
        ins = ", ".join(_shape(s) for s in box.in_shapes[:4]) or "-"
        outs = ", ".join(_shape(s) for s in box.out_shapes[:4]) or "-"
        lines.append(f"{ins} \u2192 {outs}")
        if box.param_count:
            lines.append(f"{box.param_count:,} params")
    attrs = dict(STYLES["module"])
    attrs["label"] = graphviz.nohtml("\\n".join(lines))
    state = box_attrs(g, box)
    _mark(attrs, nonfinite=state["nonfinite"], dashed=state["dead"])
    return attrs


def _mark(attrs: dict, nonfinite: bool, dashed: bool) -> None:
    if nonfinite:
        attrs.update(color="red", penwidth="2")
    if dashed:
        attrs["style"] = f"{attrs['style']},dashed" if attrs.get("style") else "dashed"


def _emit_legend(dot: graphviz.Digraph) -> None:
    """One table node naming each colour and border (an HTML-like label keeps it compact)."""
    cells = [
        f'<TD BGCOLOR="{STYLES["input"]["fillcolor"]}">input</TD>',
        f'<TD BGCOLOR="{STYLES["parameter"]["fillcolor"]}">parameter</TD>',
        f'<TD><FONT COLOR="{STYLES["constant"]["fontcolor"]}">constant</FONT></TD>',
        f'<TD BGCOLOR="{STYLES["op"]["fillcolor"]}">op</TD>',
        f'<TD BGCOLOR="{STYLES["output"]["fillcolor"]}">loss / output</TD>',
        f'<TD BGCOLOR="{STYLES["module"]["fillcolor"]}">collapsed module</TD>',
        '<TD COLOR="red">NaN / Inf</TD>',
        '<TD STYLE="dashed">no gradient / dead</TD>',
    ]
    table = f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3"><TR>{"".join(cells)}</TR></TABLE>>'
    dot.node("legend", label=table, shape="plaintext")
