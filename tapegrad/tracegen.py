"""Code generation for `tg.trace`: a tape's records as one straight-line Python function.

The forward part calls each record's ``primitive.forward`` on raw torch tensors. The backward
part is not a second copy of the reverse walk: `compile_records` runs the one walk
(`tapegrad.walk`) on the traced values, and `_Emitter` writes each VJP rule call and each sum the
walk reports as a line, so the code makes the calls eager replay makes, in its order, and the
same faults raise the same errors. That run is also the first call's result. Each leaf's
gradient is accumulated into ``.grad`` (and its hooks run) where the walk found it final.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .errors import TapeError
from .hooks import HOOKS, run_hooks
from .tensor import Tensor, wrap
from .walk import first_consumers, walk

if TYPE_CHECKING:
    from .primitive import Record

__all__ = ["Plan", "Retrace", "compile_records", "structure"]

# a record's inputs and params as the generated code names them: ([(text, value)], {key: (text, value)})
_Operands = tuple[list[tuple[str, Any]], dict[str, tuple[str, Any]]]


class Retrace(Exception):
    """A captured tensor changed shape, dtype, device or requires_grad: the plan is stale."""


class Plan:
    """One compiled trace: the generated function and how to map its results back."""

    def __init__(
        self,
        run: Callable[..., tuple[tuple, tuple]],
        step: Callable[..., Any],
        source: str,
        const_leaves: list[tuple[int, Tensor]],
        arg_leaves: list[tuple[int, int]],
        structure: tuple,
        out_flags: list[bool],
    ) -> None:
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


def structure(records: Iterable[Record]) -> tuple:
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
        self.step_at: list[tuple[int, str, str]] = []  # (line, leaf, gradient): step-only accumulation
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

    def leaf_name(self, t: Tensor) -> str:
        """The generated code's name of a leaf's tg.Tensor: its argument, or its captured constant."""
        if id(t) in self.arg_index:
            return f"a{self.arg_index[id(t)]}"
        self.operand(t)
        return "C" + self.names[id(t)][1:]

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
            local = self.names.get(id(a))
            return (local, self.values[local]) if local else (self.const(a), a)
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

    def text(self, fn_name: str, fn: Any, head: list[str], ops: _Operands) -> str:
        """The text of ``fn(*head, *inputs, **params)``, binding ``fn`` to ``fn_name``."""
        self.ns[fn_name] = fn
        texts = head + [text for text, _ in ops[0]] + [_keyword(k, text) for k, (text, _) in ops[1].items()]
        return f"{fn_name}({', '.join(texts)})"


def _keyword(name: str, text: str) -> str:
    """``name=text``, or ``**{'lambda': text}`` for a name that is a Python keyword or no identifier."""
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"{name}={text}"
    return f"**{{{name!r}: {text}}}"


def compile_records(
    records: Sequence[Record], args: tuple, outs: tuple[Tensor, ...], kind: Any = None
) -> tuple[Plan, tuple]:
    """Generate the replay of ``records``; returns the plan and the first call's leaf gradients.

    ``kind`` is how ``fn`` returned ``outs``: None for one tensor, else tuple or list.
    """
    w = _Writer(args)
    kept = _needed(records, outs)
    operands: list[_Operands] = []
    for j, r in enumerate(kept):  # forward: one line per record
        ops = ([w.operand(a) for a in r.inputs], {k: w.operand(v) for k, v in r.params.items()})
        operands.append(ops)
        w.lines.append(f"v{j} = {w.text(f'F{j}', r.primitive.forward, [], ops)}")
        w.names[id(r.output)] = f"v{j}"
        w.values[f"v{j}"] = r.output.data
    leaves = _backward(w, kept, operands, outs[0])
    out_names = [w.operand(o)[0] for o in outs]
    const_leaves: list[tuple[int, Tensor]] = []
    arg_leaves: list[tuple[int, int]] = []
    grad_names: list[str] = []
    for slot, (t, name) in enumerate(leaves):
        grad_names.append(name)
        if id(t) in w.arg_index:
            arg_leaves.append((slot, w.arg_index[id(t)]))
        else:
            const_leaves.append((slot, t))
    flags = [o.requires_grad for o in outs]
    run, step, source = _build(w, len(args), out_names, flags, kind, grad_names)
    plan = Plan(run, step, source, const_leaves, arg_leaves, structure(records), flags)
    return plan, tuple(w.values[n] for n in grad_names)


def _needed(records: Sequence[Record], outs: Sequence[Tensor]) -> list[Record]:
    """The records the outputs depend on, in tape order (the rest is dead code)."""
    need = {id(o) for o in outs}
    kept = []
    for r in reversed(records):
        if id(r.output) in need:
            kept.append(r)
            need.update(id(a) for a in r.inputs)
    kept.reverse()
    return kept


def _backward(w: _Writer, kept: list[Record], operands: list[_Operands], target: Tensor) -> list[tuple[Tensor, str]]:
    """Run the reverse walk `Tape.backward` runs, writing each rule call and sum as a line.

    Returns (leaf, gradient local) pairs, in the order the leaves' gradients became final; `step`
    accumulates each into ``.grad`` (and runs its hooks) at that point of the generated code.
    """
    if not target.requires_grad:
        return []
    if target.data.numel() != 1:
        raise TapeError(f"trace: the loss has shape {tuple(target.shape)}; a traced step needs a scalar loss")
    tname, tvalue = w.operand(target)
    w.lines.append(f"gs = _ones_like({tname})")
    seed = torch.ones_like(tvalue)
    w.values["gs"] = seed
    log = _Emitter(w, kept, operands)
    log.names[id(seed)] = "gs"
    at = first_consumers(kept, lambda a: a.requires_grad)
    rest = walk(kept, target, seed, None, raw=True, log=log, ready=(at, log.ready))
    for leaf, value in rest.values():  # a leaf no record reads: the target itself
        log.ready(leaf, value)
    return log.leaves


class _Emitter:
    """What the walk tells `tg.trace`: every VJP rule call and every sum, as lines of `_Writer`."""

    def __init__(self, w: _Writer, kept: list[Record], operands: list[_Operands]) -> None:
        self.w = w
        self.index = {id(r): j for j, r in enumerate(kept)}
        self.operands = operands
        self.names: dict[int, str] = {}  # id of a gradient value -> its expression
        self.leaves: list[tuple[Tensor, str]] = []
        self.n = 0

    def _local(self, value: Any, text: str) -> str:
        name = f"g{self.n}"
        self.n += 1
        self.w.lines.append(f"{name} = {text}")
        self.w.values[name] = value  # keeps the value alive: its id names it until the end
        self.names[id(value)] = name
        return name

    def vjp(self, r: Record, i: int | None, fn: Any, g: Any, result: Any) -> None:
        """One rule call: ``i`` is the input of a per-input rule, None for a rule of all inputs."""
        j = self.index[id(r)]
        head = [self.names[id(g)], f"v{j}"]
        if i is not None:
            if result is not None:
                self._local(result, self.w.text(f"B{j}_{i}", fn, head, self.operands[j]))
            return
        self.w.lines.append(f"t{j} = {self.w.text(f'B{j}', fn, head, self.operands[j])}")
        self.w.values[f"t{j}"] = result
        for k, value in enumerate(result):
            if value is not None:
                self.names[id(value)] = f"t{j}[{k}]"

    def fix(self, before: Any, after: Any) -> None:
        """A gradient the walk cast to its input's dtype (`walk.checked_gradient`)."""
        name = f"DT{self.n}"
        self.w.ns[name] = after.dtype
        self._local(after, f"{self.names[id(before)]}.to({name})")

    def add(self, prev: Any, g: Any, total: Any) -> None:
        """One accumulation ``prev + g``."""
        self._local(total, f"{self.names[id(prev)]} + {self.names[id(g)]}")

    def ready(self, leaf: Tensor, value: Any) -> None:
        """A leaf's gradient is final: `step` accumulates it (and runs its hooks) here."""
        name = self.names[id(value)]
        if not name.startswith("g") or name == "gs":  # an expression or the seed: give it a local
            name = self._local(value, name)
        self.leaves.append((leaf, name))
        self.w.step_at.append((len(self.w.lines), self.w.leaf_name(leaf), name))


def _build(
    w: _Writer, n_args: int, out_names: list[str], flags: list[bool], kind: Any, grad_names: list[str]
) -> tuple[Callable[..., tuple[tuple, tuple]], Callable[..., Any], str]:
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
    w.ns["HOOKS"], w.ns["_run_hooks"] = HOOKS, run_hooks
    # step accumulates each leaf's gradient (and runs its hooks) where the walk found it final
    body: list[str] = []
    start = 0
    for at, leaf, g in w.step_at:
        body += w.lines[start:at]
        start = at
        body += [
            f"p = {leaf}.grad",
            f"{leaf}.grad = _wrap({g}) if p is None else p + _wrap({g})",
            f"if HOOKS and id({leaf}) in HOOKS:\n        _run_hooks({leaf})",
        ]
    body += w.lines[start:]
    tail = []
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
        f"def step({params}):\n{lines(w.setup + body + tail)}"
    )
    exec(compile(source, "<tapegrad.trace>", "exec"), w.ns)
    return w.ns["replay"], w.ns["step"], source


def _refresher(ns: dict, captured: list[Tensor]) -> Callable[[], None]:
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
