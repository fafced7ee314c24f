"""A tape (or the tensor it computed) as a `networkx.DiGraph`: the one graph model of viz.

Node ids are integers in tape order. There is a node per leaf tensor (``kind`` "input",
"parameter" or "constant"), one per record ("op", standing for the tensor it produced) and
one per final output ("output"). ``G.graph["modules"]`` lists the module scopes (one entry
per module call; a plain ``tg.scope`` name reopened under the same parent is one entry) that
the ``scope`` node attribute indexes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx
import torch

from tapegrad.engine.errors import TapeError
from tapegrad.engine.primitives import Record
from tapegrad.engine.state import Scope
from tapegrad.engine.tape import Tape, tape_of
from tapegrad.engine.tensors import Tensor
from tapegrad.engine.walk import leading_to

from .attrs import constant_attrs, module_attrs, params_text, scope_label, site_text, tensor_attrs
from .backward import Trace, tape_records

__all__ = ["to_networkx", "resolve"]

Source = Tape | Tensor | Trace | Sequence[Record]


def resolve(source: Source, target: Tensor | None = None) -> tuple[list[Record], Tensor | None, Trace | None]:
    """(records, target, trace) for a tape, a trace, a recorded tensor or a list of records.

    Given a tensor, only the records that lead to it are kept and it becomes the target.
    """
    if isinstance(source, Trace):
        return list(source.records), target if target is not None else source.target, source
    if isinstance(source, Tape):
        return tape_records(source), target, None
    if isinstance(source, Tensor):
        tape = tape_of(source)
        if tape is None:
            raise TapeError(
                "viz: this tensor was not recorded on any tape; compute it inside `with tg.Tape():` from "
                "tensors that require grad (or pass the tape itself)"
            )
        return leading_to(tape_records(tape), (source,)), source, None
    if isinstance(source, Sequence) and all(isinstance(r, Record) for r in source):
        return list(source), target, None
    raise TypeError(
        f"viz: expected a tg.Tape, a tg.Tensor, a viz.Trace or a list of records, got {type(source).__name__}"
    )


def to_networkx(
    source: Source,
    target: Tensor | None = None,
    *,
    params: Any = None,
    values: bool = False,
) -> nx.DiGraph:
    """The recorded computation as a DiGraph with integer node ids in tape order.

    ``source`` is a `tg.Tape`, a tensor (only the records that lead to it), a `viz.Trace` from
    `trace_backward` (every node gets ``grad_norm``) or a list of records. ``target`` marks the
    output of a tape; records that do not reach it get ``dead=True``. Parameter names come
    from the module scopes (``"0.weight"``); ``params`` (a module or a name->tensor mapping)
    names tensors used outside any module. ``values=True`` adds value statistics.

    Node attributes: ``kind`` (input, parameter, constant, op, output), ``op``, ``name``,
    ``out_shape``, ``dtype``, ``device``, ``module`` ("0 (Linear)"), ``scope`` (index into
    ``G.graph["modules"]``), ``requires_grad``, ``numel``, ``finite``, ``dead`` (``released=True`` for a tensor
    whose values its tape released because no VJP reads them: shape and dtype only), and after a
    backward pass ``grad_norm`` and ``grad_finite`` (``no_grad=True`` where none arrived).
    Edges carry ``args``, the argument positions of the source in the op's call.
    """
    records, target, trace = resolve(source, target)
    builder = _Builder(params, values, trace)
    for r in records:
        builder.add_record(r)
    builder.add_outputs(records, target)
    return builder.graph


class _Builder:
    def __init__(self, params: Any, values: bool, trace: Trace | None) -> None:
        self.graph = nx.DiGraph(modules=[], backward=False)
        self.values = values
        self.trace = trace
        self.node_of: dict[int, int] = {}  # id(tensor) -> node standing for it
        self.modules: list[dict] = self.graph.graph["modules"]
        self.scope_index: dict[int, int] = {}  # id(Scope) -> index in modules
        self.named_scopes: dict[tuple, int] = {}  # (parent index, path) -> index, for name scopes
        self.names_by_module: dict[int, dict[int, str]] = {}
        self.extra_names = _param_names(params)
        self.keep: list[Any] = []  # scopes and constants whose ids we hold
        self.leaves: list[int] = []

    def _new_node(self, **attrs: Any) -> int:
        nid = self.graph.number_of_nodes()
        self.graph.add_node(nid, **attrs)
        return nid

    def add_record(self, r: Record) -> None:
        scope = self._scope(r.scope)
        edges: dict[int, list[int]] = {}
        for pos, a in enumerate(r.inputs):
            nid = self.node_of.get(id(a)) if isinstance(a, (Tensor, torch.Tensor)) else None
            if nid is None:
                nid = self._leaf(a, r, scope)
            edges.setdefault(nid, []).append(pos)
        first = r.outputs[0] if r.outputs else r.output  # a multi-output record: one node, its first output's attrs
        attrs = tensor_attrs(first, self.values)
        attrs.update(kind="op", op=r.primitive.name, name="", params=params_text(r.params))
        attrs.update(module_attrs(r.scope, scope), call_site=site_text(r.site), dead=False)
        self._grad(attrs, first)
        op = self._new_node(**attrs)
        for o in r.outputs:
            self.node_of[id(o)] = op
        for src, positions in edges.items():
            self.graph.add_edge(src, op, args=positions)

    def _leaf(self, a: Any, r: Record, scope: int | None) -> int:
        if not isinstance(a, Tensor):
            attrs = constant_attrs(a)
            attrs.update(module_attrs(r.scope, scope), dead=False)
            nid = self._new_node(**attrs)
            if isinstance(a, torch.Tensor):
                self.node_of[id(a)] = nid
                self.keep.append(a)
            return nid
        name = self._param_name(a, r.scope)
        is_param = name is not None or type(a).__name__ == "Parameter"
        attrs = tensor_attrs(a, self.values)
        attrs.update(kind="parameter" if is_param else "input", op="", name=name or "", dead=False)
        if is_param:
            attrs.update(module_attrs(r.scope, scope))
        else:
            attrs.update(module="", scope=None)
        self._grad(attrs, a)
        nid = self._new_node(**attrs)
        self.node_of[id(a)] = nid
        self.leaves.append(nid)
        return nid

    def _grad(self, attrs: dict, t: Tensor) -> None:
        if self.trace is not None:
            g = self.trace.grads.get(id(t))
        else:
            g = t.grad.data if attrs.get("kind") in ("input", "parameter") and t.grad is not None else None
            if g is not None:
                self.graph.graph["backward"] = True
        if g is not None:
            attrs["grad_norm"] = float(torch.linalg.vector_norm(g.double()))
            attrs["grad_finite"] = bool(torch.isfinite(g).all())

    def _scope(self, scope: Scope | None) -> int | None:
        if scope is None:
            return None
        chain = []
        s: Scope | None = scope
        while s is not None and id(s) not in self.scope_index:
            chain.append(s)
            s = s.parent
        for s in reversed(chain):
            parent = None if s.parent is None else self.scope_index[id(s.parent)]
            depth = 0 if parent is None else self.modules[parent]["depth"] + 1
            self.keep.append(s)
            if s.module is None:  # a plain name scope is a name: reopening it joins the same cluster
                known = self.named_scopes.get((parent, s.path))
                if known is not None:
                    self.scope_index[id(s)] = known
                    continue
                self.named_scopes[(parent, s.path)] = len(self.modules)
            self.scope_index[id(s)] = len(self.modules)
            self.modules.append(
                {"path": s.path, "type": s.type_name, "label": scope_label(s), "parent": parent, "depth": depth}
            )
        return self.scope_index[id(scope)]

    def _param_name(self, t: Tensor, scope: Scope | None) -> str | None:
        s = scope
        while s is not None:
            module = s.module
            if module is not None and hasattr(module, "named_parameters"):
                names = self.names_by_module.get(id(module))
                if names is None:
                    names = {id(p): n for n, p in module.named_parameters()}
                    self.names_by_module[id(module)] = names
                    self.keep.append(module)
                name = names.get(id(t))
                if name is not None:
                    return f"{s.path}.{name}" if s.path else name
            s = s.parent
        return self.extra_names.get(id(t))

    def add_outputs(self, records: list[Record], target: Tensor | None) -> None:
        g = self.graph
        if target is not None:
            if id(target) not in self.node_of:
                raise TapeError(f"viz: the target {tuple(target.shape)} was not recorded on this tape")
            ends = [self.node_of[id(target)]]
            self.keep.append(target)
        else:
            ends = [n for n, d in g.nodes(data=True) if d["kind"] == "op" and g.out_degree(n) == 0]
        for end in ends:
            attrs = {k: v for k, v in g.nodes[end].items() if k not in ("op", "params", "call_site", "scope", "module")}
            scalar = attrs.get("numel") == 1 and str(attrs.get("dtype", "")).startswith("float")
            attrs.update(kind="output", op="", name="loss" if scalar else "output", module="", scope=None)
            out = self._new_node(**attrs)
            g.add_edge(end, out, args=[0])
        _mark_dead(g, [n for n in g.nodes if g.nodes[n]["kind"] == "output"])
        if self.trace is not None:
            g.graph["backward"] = True
        if g.graph["backward"]:
            for n in self.leaves:
                d = g.nodes[n]
                d["no_grad"] = d["kind"] == "parameter" and "grad_norm" not in d


def _mark_dead(g: nx.DiGraph, outputs: Iterable[int]) -> None:
    """Nodes with no path to an output get ``dead=True`` (an iterative reverse search)."""
    alive = set(outputs)
    stack = list(alive)
    while stack:
        n = stack.pop()
        for p in g.predecessors(n):
            if p not in alive:
                alive.add(p)
                stack.append(p)
    for n, d in g.nodes(data=True):
        d["dead"] = n not in alive


def _param_names(params: Any) -> dict[int, str]:
    if params is None:
        return {}
    items = params.named_parameters() if hasattr(params, "named_parameters") else dict(params).items()
    return {id(p): name for name, p in items}
