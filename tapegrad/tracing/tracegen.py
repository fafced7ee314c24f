"""`tg.trace`'s graph: a tape's records as one `torch.fx` graph, forward and backward.

Each kept record becomes a node calling its ``primitive.forward`` on raw torch tensors. The
backward part is not a second copy of the reverse walk: `compile_records` runs the one walk
(`tapegrad.engine.walk`) on the traced values with the graph's builder as its listener, adding a node for
every VJP rule call and every sum the walk makes, so the graph makes the calls eager replay
makes, in its order, and the same faults raise the same errors. Nodes are named from the records
(``linear_0``, ``linear_0_vjp1``: op name, module path); a random draw (a dropout mask) is a node
like any other, so every call of the graph draws anew from the generator, as the eager step does.
"""

from __future__ import annotations

import keyword
import operator
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
import torch.fx

from ..engine.hooks import has_hooks, run_hooks
from ..engine.tensors import Tensor, wrap
from ..engine.walk import Listener, captured, first_consumers, leading_to, seed, walk

if TYPE_CHECKING:
    from ..engine.primitives import Record

__all__ = ["Plan", "Declined", "accumulate", "compile_records", "structure"]

# params the generated code writes as literals; anything else is an attribute of the graph module
_LITERAL = (int, float, bool, str, type(None), slice, type(Ellipsis), torch.dtype, torch.device)


class Declined(Exception):
    """An executor cannot compile the step faithfully (a value read into Python, an op it cannot follow)."""


class Plan:
    """One traced step: the graph module ``(*inputs, *captured, *consts) -> (*outputs, *gradients)``."""

    def __init__(self, gm: torch.fx.GraphModule, captured: list[Tensor], consts: list[torch.Tensor], leaves: list,
                 structure: tuple, out_flags: list[bool], kind: Any, args: tuple) -> None:  # fmt: skip
        self.gm, self.forward = gm, gm.forward  # the generated code, without nn.Module's call machinery
        self.captured = captured  # parameters and buffers the step reads, in placeholder order
        # raw tensors the step reads (constants; batch_norm's running statistics, which it updates in place):
        # inputs too, since a compiler would bake an attribute in (restored around the runs that only check)
        self.consts = consts
        self.leaves = leaves  # per gradient: a captured tg.Tensor, or the index of the input that receives it
        self.arg_leaves = any(isinstance(leaf, int) for leaf in leaves)
        self.n_args = sum(isinstance(a, (Tensor, torch.Tensor)) for a in args)  # the graph's inputs from args
        self.n_inputs = self.n_args + len(captured) + len(consts)
        self.structure, self.kind = structure, kind  # kind: None for a single tensor, else tuple or list
        self.out_flags, self.n_out = out_flags, len(out_flags)  # requires_grad of each output, as traced
        drawn = [v for v in gm.__dict__.values() if isinstance(v, torch.Generator)]
        cuda = torch.cuda.default_generators if torch.cuda.is_available() and torch.cuda.is_initialized() else ()
        self.generators = [torch.default_generator, *cuda, *drawn]  # what a random node may draw from

    def arg_data(self, args: tuple) -> list[torch.Tensor]:
        """The graph's inputs that come from a call's arguments: the tensor arguments' data."""
        return [a.data if isinstance(a, Tensor) else a for a in args if isinstance(a, (Tensor, torch.Tensor))]

    def inputs(self, args: tuple) -> list[torch.Tensor]:
        """The graph's inputs for a call: the tensor arguments' data, the captured tensors' data, the constants."""
        return self.arg_data(args) + [t.data for t in self.captured] + self.consts

    def leaves_for(self, args: tuple) -> list[Tensor]:
        """The tensors that receive the gradients, in the order ``run`` returns them."""
        if not self.arg_leaves:
            return self.leaves
        return [args[leaf] if isinstance(leaf, int) else leaf for leaf in self.leaves]

    def run(self, *args: Any) -> tuple[tuple, tuple]:
        """(raw outputs, raw leaf gradients) of one call of the graph."""
        flat = self.forward(*self.inputs(args))
        return flat[: self.n_out], flat[self.n_out :]

    def step(self, *args: Any) -> Any:
        """One call that accumulates the gradients into ``.grad`` and returns the outputs as fn did."""
        outs, grads = self.run(*args)
        accumulate(self.leaves_for(args), grads)
        return self.result(outs)

    @contextmanager
    def rewound(self) -> Iterator[None]:
        """Runs of the step, then the generators and buffers put back: the next run draws the same numbers (a
        replay checked against the eager step must see its dropout masks) and starts from the same running
        statistics (so that a checked call updates them once)."""
        states, buffers = [(g, g.get_state()) for g in self.generators], [(t, t.clone()) for t in self.consts]
        try:
            yield
        finally:
            for g, state in states:
                g.set_state(state)
            with torch.no_grad():
                for t, saved in buffers:
                    if not torch.equal(t, saved):  # only what the run wrote: a constant may be an expanded view
                        t.copy_(saved)

    def result(self, outs: Sequence[torch.Tensor]) -> Any:
        """The raw outputs (the first ``n_out`` of ``outs``) as tg.Tensors, in the structure ``fn`` returned."""
        if self.kind is None:  # the loss alone: the common case, on every call
            t = wrap(outs[0])
            t.requires_grad = self.out_flags[0]
            return t
        wrapped = [wrap(o) for o in outs[: self.n_out]]
        for t, flag in zip(wrapped, self.out_flags):
            t.requires_grad = flag
        return self.kind(wrapped)


def accumulate(leaves: Sequence[Tensor], grads: Iterable[Any]) -> None:
    """Add each gradient into its leaf's ``.grad`` (in the order the walk found them final), running hooks."""
    hooks = has_hooks()
    for leaf, g in zip(leaves, grads):
        leaf.grad = wrap(g) if leaf.grad is None else leaf.grad + wrap(g)
        if hooks and has_hooks(leaf):
            run_hooks(leaf)


def structure(records: Iterable[Record]) -> tuple:
    """What ran, as comparable data: each record's primitive name and input shapes."""
    return tuple(
        (r.primitive.name, tuple(tuple(a.shape) for a in r.inputs if isinstance(a, (Tensor, torch.Tensor))))
        for r in records
    )


def _named(fn: Callable, module: str, name: str, packed: bool = False, spread: bool = False) -> Callable:
    """``fn`` under a readable name for the generated code: a copy of a Python function (no extra call), or
    a wrapper; ``packed`` takes the params as a last positional dict (a param named ``lambda`` is no keyword),
    ``spread`` its last positional argument (before that dict) as a tuple of arguments (a forward's residuals)."""
    if isinstance(fn, types.FunctionType) and not packed and not spread:
        copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
        copy.__kwdefaults__, copy.__module__ = fn.__kwdefaults__, module
        return copy
    if not packed and not spread and str(getattr(fn, "__module__", "")).startswith("torch"):
        return fn  # torch's own functions keep their qualified names

    def call(*args: Any, **kwargs: Any) -> Any:
        if packed:
            args, kwargs = args[:-1], args[-1]
        return fn(*args[:-1], *args[-1], **kwargs) if spread else fn(*args, **kwargs)

    call.__name__, call.__module__ = name, module
    return call


def _label(r: Record) -> str:
    """'linear_0' / 'relu_encoder_1': the op name and its module path, as a Python name."""
    path = r.scope.path if r.scope is not None else ""
    return f"{r.primitive.name}_{path}" if path else r.primitive.name


class _Builder(Listener):
    """The graph being built, with a node for every traced value (by id) and the constants it reads; as the
    walk's listener (`backward`), a node for every VJP rule call and every sum, and the final gradients."""

    def __init__(self, args: tuple, captured: list[Tensor]) -> None:
        self.graph = torch.fx.Graph()
        self.nodes: dict[int, torch.fx.Node] = {}
        self.keep: list[Any] = []  # traced values stay alive, so that their ids name them until the end
        self.consts: list[torch.Tensor] = []  # raw tensors read: inputs after the captured tensors
        self.attrs: dict[str, Any] = {}  # other objects read (generators): attributes of the module
        self.rules: dict[tuple[int, bool, bool], Callable] = {}  # (id of a rule, packed, spread) -> its renamed copy
        self.first: list[tuple[Tensor, Any, Any]] = []  # (leaf, gradient node, first value), as final
        self.operands: dict[int, tuple[tuple, dict]] = {}  # per record (by id): its inputs' and params' operands
        self.extras: dict[int, torch.fx.Node] = {}  # per record: the residuals its fast rule reads
        for i, a in enumerate(args):
            if isinstance(a, (Tensor, torch.Tensor)):
                self.bind(a, self.graph.placeholder(f"input_{i}"))
        for k, t in enumerate(captured):
            self.bind(t, self.graph.placeholder(f"captured_{k}"))
        self.last = next(reversed(self.graph.nodes), None)  # the last input so far

    def bind(self, value: Any, node: torch.fx.Node) -> torch.fx.Node:
        for k, v in enumerate(value if value.__class__ is tuple else ()):  # a multi-output record's outputs
            self.bind(v, self.graph.call_function(operator.getitem, (node, k)))
        self.nodes[id(value)] = node
        if isinstance(value, Tensor):
            self.nodes[id(value.data)] = node
        self.keep.append(value)
        return node

    def operand(self, a: Any, name: str = "const") -> Any:
        """A node for a traced tensor, a literal, a tuple of operands, or a constant: a raw tensor is an input
        named with the param that holds it (``const_0_running_mean``), an object such as a generator an attribute."""
        node = self.nodes.get(id(a))
        if node is None and isinstance(a, Tensor):
            node = self.nodes.get(id(a.data))
        if node is not None:
            return node
        if isinstance(a, (tuple, list)):
            return type(a)(self.operand(x, name) for x in a)
        if isinstance(a, _LITERAL):
            return a
        if isinstance(a, torch.Tensor):
            with self.graph.inserting_after(self.last):
                label = f"_{name}" if name.isidentifier() and name != "const" else ""  # after a unique prefix
                self.last = self.graph.placeholder(f"const_{len(self.consts)}{label}")
            self.consts.append(a)
            return self.bind(a, self.last)
        name = f"{type(a).__name__.lower()}_{len(self.attrs)}"
        self.attrs[name] = a
        return self.bind(a, self.graph.get_attr(name))

    def call(self, fn: Callable, label: str, args: tuple, kwargs: dict, meta: tuple,
             spread: bool = False) -> torch.fx.Node:  # fmt: skip
        packed = any(not k.isidentifier() or keyword.iskeyword(k) for k in kwargs)  # no keyword argument in code
        rule = self.rules.get((id(fn), packed, spread))
        if rule is None:
            rule = self.rules[id(fn), packed, spread] = _named(fn, meta[0], meta[1], packed, spread)
        if packed:
            args, kwargs = (*args, kwargs), {}
        node = self.graph.call_function(rule, args, kwargs)
        node._rename(label)
        node.meta["tapegrad"] = meta
        return node

    def backward(self, kept: list[Record], target: Tensor) -> None:
        """Run the reverse walk `Tape.backward` runs with this builder as its listener; the leaves' gradient
        nodes are in ``first``, in the order they became final."""
        if not target.requires_grad:
            return
        ones = seed(target, None, raw=True, caller="trace")
        self.bind(ones, self.call(torch.ones_like, "seed", (self.operand(target),), {}, ("seed", "ones_like", "")))
        self.ready_at = first_consumers(kept, lambda a: a.requires_grad)
        rest = walk(kept, target, ones, raw=True, listener=self)
        for leaf, value in rest.values():  # a leaf no record reads: the target itself
            self.ready(leaf, value)

    def vjp(self, r: Record, i: int | None, fn: Any, g: Any, result: Any) -> None:
        """One rule call: ``i`` is the input of a per-input rule, None for a rule of all inputs."""
        args, kwargs = self.operands[id(r)]
        spread = i is None and id(r) in self.extras
        if spread:
            args += (self.extras[id(r)],)
        head = (self.operand(g), self.operand(r.output))
        path = r.scope.path if r.scope is not None else ""
        meta = ("vjp", r.primitive.name if i is None else f"{r.primitive.name}_input{i}", path)
        node = self.call(fn, f"{_label(r)}_vjp{'' if i is None else i}", head + args, kwargs, meta, spread)
        if i is not None:
            if result is not None:
                self.bind(result, node)
            return
        self.keep.append(result)
        for k, value in enumerate(result):
            if value is not None:
                self.bind(value, self.graph.call_function(operator.getitem, (node, k)))

    def cast(self, before: Any, after: Any) -> None:
        """A gradient the walk made what it accumulates (`walk_checks.checked_gradient`): unwrapped, cast."""
        node = self.operand(before)
        if isinstance(before, Tensor):
            node = self.graph.call_function(getattr, (node, "data"))
        self.bind(after, self.graph.call_method("to", (node, after.dtype)) if after.dtype != before.dtype else node)

    def add(self, prev: Any, g: Any, total: Any) -> None:
        """One accumulation ``prev + g``."""
        self.bind(total, self.graph.call_function(operator.add, (self.operand(prev), self.operand(g))))

    def ready(self, leaf: Tensor, value: Any) -> None:
        """A leaf's gradient is final: it is an output of the graph, in this order."""
        self.first.append((leaf, self.operand(value), value))


def compile_records(records: Sequence[Record], args: tuple, outs: tuple[Tensor, ...], kind: Any) -> tuple[Plan, tuple]:
    """The graph of ``records`` (forward, then the walk's backward); returns the plan and the first
    call's leaf gradients. ``kind`` is how ``fn`` returned ``outs``: None for one tensor, else tuple or list."""
    reads = captured(records, args)
    b = _Builder(args, reads)
    kept = leading_to(records, outs)
    for r in kept:
        ops = (tuple(b.operand(a) for a in r.inputs), {k: b.operand(v, k) for k, v in r.params.items()})
        b.operands[id(r)] = ops
        meta = ("forward", r.primitive.name, r.scope.path if r.scope is not None else "")
        keeps = r.primitive.residuals
        if keeps is None or not any(o.requires_grad for o in r.outputs):
            b.bind(r.output, b.call(r.primitive.forward, _label(r), ops[0], ops[1], meta))
            continue
        # the forward that also returns what the fast rule reuses (flash attention's log-sum-exps), as an
        # eager tape keeps them: the rule's node reads them instead of running the forward kernel again
        node = b.call(keeps, f"{_label(r)}_residuals", ops[0], ops[1], meta)
        b.bind(r.output, b.graph.call_function(operator.getitem, (node, 0)))._rename(_label(r))
        b.extras[id(r)] = b.graph.call_function(operator.getitem, (node, 1))  # spread after the rule's inputs
    b.backward(kept, outs[0])
    arg_index = {id(a): i for i, a in enumerate(args)}
    plan_leaves = [arg_index.get(id(t), t) for t, _, _ in b.first]
    b.graph.output(tuple(b.operand(o) for o in outs) + tuple(node for _, node, _ in b.first))
    b.graph.eliminate_dead_code()
    gm = torch.fx.GraphModule(b.attrs, b.graph, class_name="TracedStep")
    plan = Plan(gm, reads, b.consts, plan_leaves, structure(records), [o.requires_grad for o in outs], kind, args)
    return plan, tuple(v for _, _, v in b.first)
