"""`viz.explain`: the reverse sweep of a tape told step by step, for people learning backpropagation.

For each record, last first: the op and its module, the gradient arriving at its output, the rule
its VJP applies (the rule's source expression, or its name and docstring) and the gradient it
sends to each input. Printed as text (``str``), as a Markdown table (`Explanation.to_markdown`)
and as an HTML table in notebooks (``_repr_html_``).
"""

from __future__ import annotations

import html
import inspect
import linecache
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from tapegrad.primitive import Record
from tapegrad.state import STATE
from tapegrad.tape import Tape
from tapegrad.tensor import Tensor

from .attrs import scope_label, site_text
from .backward import trace_backward

__all__ = ["explain", "Explanation", "Step", "Send"]


@dataclass
class Send:
    """The gradient one step sends to one input of its op (added to what that input already has)."""

    position: int
    label: str
    rule: str
    gradient: torch.Tensor | None


@dataclass
class Step:
    """One record of the reverse sweep: ``output = op(inputs)``, the incoming gradient and the sends."""

    number: int
    record: int  # index of the record on the tape
    op: str
    module: str
    site: str
    output: str
    inputs: list[str]
    incoming: torch.Tensor
    sends: list[Send] = field(default_factory=list)
    binding: str = ""  # the rule's arguments as this step passes them: 'g = dL/dc, out = c, x = b, y = 3'


class Explanation:
    """The steps of one reverse sweep; ``str()`` is the text account, `to_markdown` a table."""

    def __init__(self, steps: list[Step], target: str, seed: torch.Tensor, leaves: list[tuple[str, torch.Tensor]]):
        self.steps = steps
        self.target = target
        self.seed = seed
        self.leaves = leaves  # (label, total gradient) of the tensors no record produced

    def __str__(self) -> str:
        head = f"Reverse sweep towards {self.target}, seeded with dL/d{self.target} = {_value(self.seed)}"
        lines = [head, ""]
        for s in self.steps:
            where = ", ".join(p for p in (f"record {s.record}", s.module and f"in {s.module}", s.site) if p)
            lines.append(f"step {s.number}: {s.output} = {s.op}({', '.join(s.inputs)})  [{where}]")
            lines.append(f"  incoming  dL/d{s.output} = {_value(s.incoming)}")
            if s.binding:
                lines.append(f"  with      {s.binding}")
            for i, send in enumerate(s.sends):
                lines.append(f"  {'rule' if i == 0 else '    '}      d/d{send.label}: {send.rule}")
            for i, send in enumerate(s.sends):
                lines.append(f"  {'sends' if i == 0 else '     '}     dL/d{send.label} += {_value(send.gradient)}")
        if self.leaves:
            lines += ["", "gradients of the leaves (the sum of what was sent to each):"]
            lines += [f"  dL/d{n} = {_value(g)}" for n, g in self.leaves]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Explanation of {len(self.steps)} steps towards {self.target}>"

    def rows(self) -> list[tuple[str, ...]]:
        """One row per step: step, op, module, incoming gradient, the rule's arguments, rule, gradients sent."""
        rows = []
        for s in self.steps:
            rule = "; ".join(f"d/d{x.label}: {x.rule}" for x in s.sends)
            sends = "; ".join(f"dL/d{x.label} += {_value(x.gradient)}" for x in s.sends)
            op = f"{s.output} = {s.op}({', '.join(s.inputs)})"
            incoming = f"dL/d{s.output} = {_value(s.incoming)}"
            rows.append((str(s.number), op, s.module, incoming, s.binding, rule, sends))
        return rows

    HEADER = ("step", "op", "module", "incoming gradient", "with", "rule (VJP)", "sends")

    def to_markdown(self) -> str:
        """The steps as a Markdown table."""

        def cells(row: tuple[str, ...]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

        lines = [cells(self.HEADER), "|" + "---|" * len(self.HEADER)]
        return "\n".join(lines + [cells(r) for r in self.rows()])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.HEADER)
        body = "".join(
            "<tr>" + "".join(f"<td><code>{html.escape(c)}</code></td>" for c in r) + "</tr>" for r in self.rows()
        )
        caption = html.escape(f"Reverse sweep towards {self.target}, seeded with {_value(self.seed)}")
        return f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def explain(
    tape: Tape,
    target: Tensor,
    grad_output: Any = None,
    *,
    names: Mapping[str, Tensor] | None = None,
    params: Any = None,
    call_sites: bool = True,
) -> Explanation:
    """Replay ``tape`` towards ``target`` and tell each step of the reverse sweep.

    Tensors are labelled by ``names`` (``{"x": x}``), by parameter names from the module scopes
    or ``params`` (a module or a name->tensor mapping), else ``v3`` for the output of record 3
    and ``in0``, ``in1``, ... for other inputs. A one-shot tape is used up by it, as by
    ``tape.gradient``. Records that no gradient reaches are left out, and so are the gradients of
    inputs that neither require grad nor were watched (constants such as a loss's target), as in
    the walk itself. ``call_sites=False`` leaves out where each op was called.
    """
    watched = set(getattr(tape, "_watched", None) or ())  # the replay releases a one-shot tape's set
    trace = trace_backward(tape, target, grad_output=grad_output)
    produced = {id(r.output) for r in trace.records}

    def needs_gradient(a: Any) -> bool:
        return isinstance(a, Tensor) and (id(a) in produced or a.requires_grad or id(a) in watched)

    labels = _Labels(trace.records, names, params)
    steps = []
    for index in range(len(trace.records) - 1, -1, -1):
        r = trace.records[index]
        g = trace.grad_of(r.output)
        if g is None:
            continue
        step = Step(
            number=len(steps) + 1,
            record=index,
            op=r.primitive.name,
            module="" if r.scope is None else scope_label(r.scope),
            site=site_text(r.site) if call_sites else "",
            output=labels.of(r.output),
            inputs=[labels.of(a) for a in r.inputs],
            incoming=g,
        )
        for i, gi in enumerate(_apply_rule(r, g)):
            a = r.inputs[i]
            if needs_gradient(a) and a.data.is_floating_point() and gi is not None:
                step.sends.append(Send(i, labels.of(a), _rule_text(_rule_of(r, i)), gi))
        if step.sends:
            step.binding = _binding(_rule_of(r, step.sends[0].position), step)
        steps.append(step)
    leaves, seen = [], set()
    for r in trace.records:
        for a in r.inputs:
            if needs_gradient(a) and id(a) not in produced and id(a) not in seen and trace.grad_of(a) is not None:
                seen.add(id(a))
                leaves.append((labels.of(a), trace.grad_of(a)))
    seed = trace.grad_of(target) if trace.grad_of(target) is not None else torch.ones_like(target.data)
    return Explanation(steps, labels.of(target), seed, leaves)


def _apply_rule(r: Record, g: torch.Tensor) -> list[Any]:
    """What the record's VJP sends to each input for the incoming ``g`` (raw torch, as the walk calls it)."""
    prim, params, out = r.primitive, r.params, r.output.data
    args = [a.data if isinstance(a, Tensor) else a for a in r.inputs]
    sent: list[Any] = []
    all_grads = None
    open_tapes, STATE.tapes = STATE.tapes, []  # as in a first-order walk: no tape records the rules
    try:
        for i, a in enumerate(r.inputs):
            if not (isinstance(a, Tensor) and a.data.is_floating_point()):
                sent.append(None)
            elif prim.vjps is not None:
                sent.append(prim.vjps[i](g, out, *args, **params))
            else:
                all_grads = prim.vjp(g, out, *args, **params) if all_grads is None else all_grads
                sent.append(all_grads[i])
    finally:
        STATE.tapes = open_tapes
    return [s.data if isinstance(s, Tensor) else s for s in sent]


def _binding(fn: Callable, step: Step) -> str:
    """'g = dL/dc, out = c, x = b, y = 3': the names the rule's source uses, bound to this step's tensors."""
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    except (TypeError, ValueError):
        return ""
    values = [f"dL/d{step.output}", step.output, *step.inputs]
    return ", ".join(f"{n} = {v}" for n, v in zip(names, values))


def _rule_of(r: Record, i: int) -> Callable:
    prim = r.primitive
    fn = prim.vjps[i] if prim.vjps is not None else prim.vjp
    return inspect.unwrap(fn)


def _rule_text(fn: Callable) -> str:
    """A lambda's expression (``g * y``), else the rule's name and its docstring's first line; and where."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return getattr(fn, "__name__", type(fn).__name__)
    where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    if fn.__name__ == "<lambda>":
        body = _expression(code)
        if body:
            return f"{body}  ({where})"
    doc = (inspect.getdoc(fn) or "").split("\n")[0]
    return f"{fn.__name__}{' - ' + doc if doc else ''}  ({where})"


def _expression(code: Any) -> str:
    """The source text a code object's instructions cover (a lambda's body)."""
    spans = [p for p in code.co_positions() if None not in p and (p[0], p[2]) != (p[1], p[3])]
    if not spans:
        return ""
    start = min((p[0], p[2]) for p in spans)
    end = max((p[1], p[3]) for p in spans)
    lines = [linecache.getline(code.co_filename, n) for n in range(start[0], end[0] + 1)]
    if not all(lines):
        return ""
    if len(lines) == 1:
        return lines[0][start[1] : end[1]]
    text = lines[0][start[1] :] + "".join(lines[1:-1]) + lines[-1][: end[1]]
    return " ".join(text.split())


class _Labels:
    """Short names for the tensors of a tape: given names, parameter names, v<record>, in<k>."""

    def __init__(self, records: list[Record], names: Mapping[str, Tensor] | None, params: Any) -> None:
        self.names: dict[int, str] = {}
        for i, r in enumerate(records):
            self.names[id(r.output)] = f"v{i}"
        inputs = 0
        for r in records:
            for a in r.inputs:
                if isinstance(a, Tensor) and id(a) not in self.names:
                    self.names[id(a)] = f"in{inputs}"
                    inputs += 1
        self.names.update(_parameter_names(records))
        if params is not None:
            items = params.named_parameters() if hasattr(params, "named_parameters") else dict(params).items()
            self.names.update({id(p): n for n, p in items})
        self.names.update({id(t): n for n, t in (names or {}).items()})

    def of(self, a: Any) -> str:
        if isinstance(a, Tensor):
            return self.names.get(id(a), "?")
        if isinstance(a, torch.Tensor):
            return f"const{tuple(a.shape)}" if a.numel() != 1 else f"{a.item():.4g}"
        return f"{a:.4g}" if isinstance(a, float) else repr(a)


def _parameter_names(records: list[Record]) -> dict[int, str]:
    """id -> '0.weight' for the parameters of the modules whose scopes the records carry."""
    found: dict[int, str] = {}
    seen: set[int] = set()
    for r in records:
        s = r.scope
        while s is not None and id(s) not in seen:
            seen.add(id(s))
            if s.module is not None and hasattr(s.module, "named_parameters"):
                for n, p in s.module.named_parameters():
                    found.setdefault(id(p), f"{s.path}.{n}" if s.path else n)
            s = s.parent
    return found


def _value(t: torch.Tensor | None) -> str:
    """'2.5' for one element, else 'shape (8, 2), norm 1.23'."""
    if t is None:
        return "None"
    if t.numel() == 1:
        return f"{t.item():.6g}"
    norm = float(torch.linalg.vector_norm(t.double()))
    return f"shape {tuple(t.shape)}, norm {norm:.4g}"
