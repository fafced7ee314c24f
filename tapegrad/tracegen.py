"""Code generation for `tg.trace`: a tape's records as one straight-line Python function.

The forward part calls each record's ``primitive.forward`` on raw torch tensors; the backward
part calls the VJP rules in the order the eager replay calls them and accumulates gradients the
same way (``prev + g``), so a replay gives the eager results. While it writes the code,
`compile_records` also runs the backward rules once on the traced values: that is the first
call's result, and it shows which rules return ``None`` and checks every gradient's shape.
"""

from __future__ import annotations

import keyword
from typing import Any

import torch

from .errors import ShapeError, TapeError
from .tensor import Tensor, wrap

__all__ = ["Plan", "Retrace", "compile_records", "structure"]


class Retrace(Exception):
    """A captured tensor changed shape, dtype, device or requires_grad: the plan is stale."""


class Plan:
    """One compiled trace: the generated function and how to map its results back."""

    def __init__(self, run, step, source, const_leaves, arg_leaves, structure, out_flags) -> None:
        self.run = run  # run(*args) -> (raw outputs, raw leaf gradients)
        self.step = step  # step(*args) -> fn's result; accumulates into .grad
        self.source = source
        self.arg_leaves = arg_leaves  # (slot, arg index) for inputs that require grad
        self.structure = structure
        self.out_flags = out_flags  # requires_grad of each output, as traced
        self.verified = False
        self.shape: Any = None  # None for a single tensor, else the tuple/list type to rebuild
        self._const: list[Any] = [None] * (len(const_leaves) + len(arg_leaves))
        for slot, t in const_leaves:
            self._const[slot] = t

    def leaves_for(self, args: tuple) -> list[Tensor]:
        """The tensors that receive the gradients, in the order ``run`` returns them."""
        if not self.arg_leaves:
            return self._const
        leaves = list(self._const)
        for slot, i in self.arg_leaves:
            leaves[slot] = args[i]
        return leaves

    def result(self, outs: tuple) -> Any:
        """The raw outputs as tg.Tensors, in the structure ``fn`` returned."""
        wrapped = []
        for o, flag in zip(outs, self.out_flags):
            t = wrap(o)
            t.requires_grad = flag
            wrapped.append(t)
        return wrapped[0] if self.shape is None else self.shape(wrapped)


def structure(records) -> tuple:
    """What ran, as comparable data: each record's primitive name and input shapes."""
    return tuple(
        (r.primitive.name, tuple(tuple(a.shape) for a in r.inputs if isinstance(a, (Tensor, torch.Tensor))))
        for r in records
    )


class _Writer:
    """Names, constants and lines of the function being generated, with the traced values."""

    def __init__(self, args: tuple) -> None:
        self.ns: dict[str, Any] = {"_ones_like": torch.ones_like}
        self.names: dict[int, str] = {}  # id of a traced object -> the local that holds its data
        self.values: dict[str, Any] = {}  # local -> its traced value
        self.setup: list[str] = []
        self.lines: list[str] = []
        self.captured: list[Tensor] = []
        self.arg_index: dict[int, int] = {}
        self.n_consts = 0
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                self.setup.append(f"x{i} = a{i}.data")
                self.names[id(a)] = self.names[id(a.data)] = f"x{i}"
                self.values[f"x{i}"] = a.data
                self.arg_index[id(a)] = i
            elif isinstance(a, torch.Tensor):
                self.setup.append(f"x{i} = a{i}")
                self.names[id(a)] = f"x{i}"
                self.values[f"x{i}"] = a

    def const(self, value: Any) -> str:
        name = f"K{self.n_consts}"
        self.n_consts += 1
        self.ns[name] = value
        return name

    def operand(self, a: Any) -> tuple[str, Any]:
        """The expression for an input or param, and its traced value."""
        if isinstance(a, Tensor):
            name = self.names.get(id(a)) or self.names.get(id(a.data)) or self._capture(a)
            return name, self.values[name]
        if isinstance(a, torch.Tensor):
            name = self.names.get(id(a))
            return (name, self.values[name]) if name else (self.const(a), a)
        if isinstance(a, (tuple, list)) and any(isinstance(x, (Tensor, torch.Tensor)) for x in a):
            parts = [self.operand(x) for x in a]
            text = ", ".join(p[0] for p in parts)
            values = [p[1] for p in parts]
            return (f"({text},)", tuple(values)) if isinstance(a, tuple) else (f"[{text}]", values)
        return self.const(a), a

    def _capture(self, t: Tensor) -> str:
        k = len(self.captured)
        self.captured.append(t)
        self.ns[f"C{k}"], self.ns[f"D{k}"] = t, t.data
        self.setup.append(f"c{k} = C{k}.data")
        self.names[id(t)] = f"c{k}"
        self.values[f"c{k}"] = t.data
        return f"c{k}"

    def text(self, fn_name: str, fn: Any, head: list[str], ops) -> str:
        """The text of ``fn(*head, *inputs, **params)``, binding ``fn`` to ``fn_name``."""
        self.ns[fn_name] = fn
        texts = head + [text for text, _ in ops[0]] + [_keyword(k, text) for k, (text, _) in ops[1].items()]
        return f"{fn_name}({', '.join(texts)})"

    def call(self, fn_name: str, fn: Any, head: list[str], ops) -> tuple[str, Any]:
        """`text`, and the call's value on the traced data."""
        values = [self.values[h] for h in head] + [value for _, value in ops[0]]
        kwargs = {k: value for k, (_, value) in ops[1].items()}
        return self.text(fn_name, fn, head, ops), fn(*values, **kwargs)


def _keyword(name: str, text: str) -> str:
    """``name=text``, or ``**{'lambda': text}`` for a name that is a Python keyword or no identifier."""
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"{name}={text}"
    return f"**{{{name!r}: {text}}}"


def compile_records(records, args: tuple, outs: tuple[Tensor, ...], kind: Any = None) -> tuple[Plan, tuple]:
    """Generate the replay of ``records``; returns the plan and the first call's leaf gradients.

    ``kind`` is how ``fn`` returned ``outs``: None for one tensor, else tuple or list.
    """
    w = _Writer(args)
    kept = _needed(records, outs)
    operands = []
    for j, r in enumerate(kept):  # forward: one line per record
        ops = ([w.operand(a) for a in r.inputs], {k: w.operand(v) for k, v in r.params.items()})
        operands.append(ops)
        w.lines.append(f"v{j} = {w.text(f'F{j}', r.primitive.forward, [], ops)}")
        w.names[id(r.output)] = f"v{j}"
        w.values[f"v{j}"] = r.output.data
    leaves = _backward(w, kept, operands, outs[0])
    out_names = [w.operand(o)[0] for o in outs]
    const_leaves, arg_leaves, grad_names, leaf_names = [], [], [], []
    for slot, (t, name) in enumerate(leaves):
        grad_names.append(name)
        if id(t) in w.arg_index:
            arg_leaves.append((slot, w.arg_index[id(t)]))
            leaf_names.append(f"a{w.arg_index[id(t)]}")
        else:
            const_leaves.append((slot, t))
            leaf_names.append("C" + w.names[id(t)][1:])
    flags = [o.requires_grad for o in outs]
    run, step, source = _build(w, len(args), out_names, flags, kind, grad_names, leaf_names)
    plan = Plan(run, step, source, const_leaves, arg_leaves, structure(records), flags)
    return plan, tuple(w.values[n] for n in grad_names)


def _needed(records, outs) -> list:
    """The records the outputs depend on, in tape order (the rest is dead code)."""
    need = {id(o) for o in outs}
    kept = []
    for r in reversed(records):
        if id(r.output) in need:
            kept.append(r)
            need.update(id(a) for a in r.inputs)
    kept.reverse()
    return kept


def _backward(w: _Writer, kept: list, operands: list, target: Tensor) -> list[tuple[Tensor, str]]:
    """Emit the reverse pass the way `Tape.backward` runs it; returns (leaf, gradient local) pairs."""
    if not target.requires_grad:
        return []
    if target.data.numel() != 1:
        raise TapeError(f"trace: the loss has shape {tuple(target.shape)}; a traced step needs a scalar loss")
    tname, tvalue = w.operand(target)
    w.lines.append(f"gs = _ones_like({tname})")
    w.values["gs"] = torch.ones_like(tvalue)
    grads: dict[int, str] = {id(target): "gs"}
    owners: dict[int, Tensor] = {id(target): target}
    n = 0
    for j in range(len(kept) - 1, -1, -1):
        r = kept[j]
        g = grads.pop(id(r.output), None)
        if g is None:
            continue
        needed = [i for i, a in enumerate(r.inputs) if isinstance(a, Tensor) and a.requires_grad]
        if not needed:
            continue
        prim = r.primitive
        head = [g, f"v{j}"]
        if prim.vjps is not None:
            pairs = [(i, *w.call(f"B{j}_{i}", prim.vjps[i], head, operands[j])) for i in needed]
        elif prim.vjp is not None:
            text, all_values = w.call(f"B{j}", prim.vjp, head, operands[j])
            w.lines.append(f"t{j} = {text}")
            pairs = [(i, f"t{j}[{i}]", all_values[i]) for i in needed]
        else:
            raise TapeError(f"{prim.name} has no VJP: it cannot be differentiated (recorded at {r.call_site})")
        for i, text, value in pairs:
            if value is None:
                continue
            a = r.inputs[i]
            if value.shape != a.data.shape:
                raise ShapeError(
                    f"VJP of {prim.name} returned a gradient of shape {tuple(value.shape)} for input {i} "
                    f"of shape {tuple(a.shape)} (recorded at {r.call_site})"
                )
            k = id(a)
            prev = grads.get(k)
            name = f"g{n}"
            n += 1
            if prev is None:
                w.lines.append(f"{name} = {text}")
                w.values[name] = value
            else:
                w.lines.append(f"{name} = {prev} + {text}")
                w.values[name] = w.values[prev] + value
            grads[k] = name
            owners[k] = a
    return [(owners[k], name) for k, name in grads.items()]


def _build(w: _Writer, n_args: int, out_names, flags, kind, grad_names, leaf_names):
    """Two functions over one body: ``replay`` returns raw outputs and gradients (to check them),
    ``step`` accumulates the gradients into ``.grad`` and returns the outputs as tg.Tensors."""
    captured = w.captured
    guard = [f"c{k} is not D{k}" for k in range(len(captured))]
    if captured:
        w.ns["RG"] = tuple(t.requires_grad for t in captured)
        guard.append(f"({', '.join(f'C{k}.requires_grad' for k in range(len(captured)))},) != RG")
        w.ns["_refresh"] = _refresher(w.ns, captured)
        w.setup.append(f"if {' or '.join(guard)}:\n        _refresh()")
    outs = "".join(f"{o}, " for o in out_names)
    grads = "".join(f"{g}, " for g in grad_names)
    w.ns["_wrap"] = wrap
    tail = []
    for leaf, g in zip(leaf_names, grad_names):
        tail += [f"p = {leaf}.grad", f"{leaf}.grad = _wrap({g}) if p is None else p + _wrap({g})"]
    for k, (o, flag) in enumerate(zip(out_names, flags)):
        tail.append(f"o{k} = _wrap({o})")
        if flag:
            tail.append(f"o{k}.requires_grad = True")
    results = ", ".join(f"o{k}" for k in range(len(out_names)))
    tail.append(
        f"return {results}"
        if kind is None
        else f"return {'[' if kind is list else '('}{results},{']' if kind is list else ')'}"
    )
    params = ", ".join(f"a{i}" for i in range(n_args))
    lines = lambda body: "".join(f"    {line}\n" for line in body)  # noqa: E731
    source = (
        f"def replay({params}):\n{lines(w.setup + w.lines + [f'return ({outs}), ({grads})'])}\n"
        f"def step({params}):\n{lines(w.setup + w.lines + tail)}"
    )
    exec(compile(source, "<tapegrad.trace>", "exec"), w.ns)
    return w.ns["replay"], w.ns["step"], source


def _refresher(ns: dict, captured: list[Tensor]):
    """Accept new data of the same shape, dtype and device for captured tensors; else `Retrace`."""
    flags = tuple(t.requires_grad for t in captured)

    def refresh() -> None:
        if tuple(t.requires_grad for t in captured) != flags:
            raise Retrace
        for k, t in enumerate(captured):
            new, old = t.data, ns[f"D{k}"]
            if new.shape != old.shape or new.dtype != old.dtype or new.device != old.device:
                raise Retrace
        for k, t in enumerate(captured):
            ns[f"D{k}"] = t.data

    return refresh
