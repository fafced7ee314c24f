"""`viz.explain`: the reverse sweep of a tape told step by step, for people learning backpropagation.

For each record, last first: the op (by its public name) and its module, the gradient arriving at
its output, the rule its VJP applies as a formula (``dL/dweight = gᵀ x``, `viz.formulas`; for an
op without one, the rule's source expression or docstring) and the gradient it sends to each input.
Printed as text (``str``), as a Markdown table (`Explanation.to_markdown`) and as an HTML table in
notebooks (``_repr_html_``).
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from tapegrad.engine.primitives import Record
from tapegrad.engine.state import suspended_tapes
from tapegrad.engine.tape import Tape
from tapegrad.engine.tensors import Tensor
from tapegrad.engine.walk import Listener, seed, walk

from .attrs import scope_label, site_text
from .backward import tape_records
from .formulas import formula
from .rules import binding, rule_text

__all__ = ["explain", "Explanation", "Step", "Send"]


@dataclass
class Send:
    """The gradient one step sends to one input of its op (added to what that input already has)."""

    position: int
    label: str
    rule: str  # the formula (dL/dx = g ⊙ 1[x>0]), else the rule's code: 'd/dx: g * out.sign()'
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
    incoming: Any  # a tuple for a multi-output record
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
                lines.append(f"  {'rule' if i == 0 else '    '}      {send.rule}")
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
        rows: list[tuple[str, ...]] = []
        for s in self.steps:
            rule = "; ".join(x.rule for x in s.sends)
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
    """Walk ``tape`` back from ``target`` and tell each step of the reverse sweep.

    Tensors are labelled by ``names`` (``{"x": x}``), by parameter names from the module scopes
    or ``params`` (a module or a name->tensor mapping), else ``v3`` for the output of record 3
    and ``in0``, ``in1``, ... for other inputs. It is the tape's own reverse walk, listening to
    every rule it calls; the tape is not used up. As in the walk, records that no gradient
    reaches are left out, and so are inputs that neither require grad nor are watched
    (constants such as a loss's target). ``call_sites=False`` leaves out where each op was called.
    """
    records = tape_records(tape)
    if not isinstance(target, Tensor):
        raise TypeError(f"viz.explain: the target must be a tg.Tensor, got {type(target).__name__}")
    sources = _leaves(records, tape)
    start = seed(target, grad_output, raw=False, caller="viz.explain")
    log = _Calls()
    with suspended_tapes():  # as in a first-order replay: no tape records the rules
        grads = walk(records, target, start, raw=False, sources=sources, listener=log)
    labels = _Labels(records, names, params)
    index_of = {id(r): i for i, r in enumerate(records)}
    needed = {id(s) for s in sources} | {id(o) for r in records for o in r.outputs}
    steps: list[Step] = []
    for r, calls in log.by_record():
        step = Step(
            number=len(steps) + 1,
            record=index_of[id(r)],
            op=r.primitive.name,
            module="" if r.scope is None else scope_label(r.scope),
            site=site_text(r.site) if call_sites else "",
            output=", ".join(map(labels.of, r.outputs)),
            inputs=[labels.of(a) for a in r.inputs],
            incoming=_raw(calls[0][2]),
        )
        for i, fn, gi in _sent(r, calls, needed):
            label = labels.of(r.inputs[i])
            text = formula(r.primitive.name, i)
            rule = f"dL/d{label} = {text}" if text else f"d/d{label}: {rule_text(inspect.unwrap(fn))}"
            step.sends.append(Send(i, label, rule, _raw(gi)))
        if step.sends:
            step.binding = binding(inspect.unwrap(calls[0][1]), [f"dL/d{step.output}", step.output, *step.inputs])
        steps.append(step)
    leaves = [(labels.of(s), _raw(grads[id(s)][1])) for s in sources if id(s) in grads]
    return Explanation(steps, labels.of(target), start.data, leaves)


def _leaves(records: list[Record], tape: Tape) -> list[Tensor]:
    """The float tensors no record produced that require grad or that the tape watches."""
    produced = {id(o) for r in records for o in r.outputs}
    found: dict[int, Tensor] = {}
    for r in records:
        for a in r.inputs:
            if isinstance(a, Tensor) and id(a) not in produced and a.data.is_floating_point():
                if a.requires_grad or tape.watches(a):
                    found.setdefault(id(a), a)
    return list(found.values())


class _Calls(Listener):
    """The walk's listener: keeps every rule call, with the incoming gradient and the result."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []  # (record, input index or None for a whole-record rule, rule, g, result)

    def vjp(self, r: Record, i: int | None, rule: Callable, g: Any, result: Any) -> None:
        """Keep the call (the sums, casts and ready leaves are not kept: the explanation shows each part)."""
        self.calls.append((r, i, rule, g, result))

    def by_record(self) -> list[tuple[Record, list[tuple]]]:
        """The calls grouped by record, in the walk's order (last record first): (i, rule, g, result)."""
        groups: list[tuple[Record, list[tuple]]] = []
        for r, i, fn, g, result in self.calls:
            if not groups or groups[-1][0] is not r:
                groups.append((r, []))
            groups[-1][1].append((i, fn, g, result))
        return groups


def _sent(r: Record, calls: list[tuple], needed: set[int]) -> list[tuple[int, Callable, Any]]:
    """(input index, rule, gradient) for each input the walk sent a gradient to."""
    out = []
    for i, fn, _, result in calls:
        if i is not None:
            if result is not None:
                out.append((i, fn, result))
            continue
        for j, gj in enumerate(result):  # one rule for every input: the walk keeps those it needs
            if gj is not None and isinstance(r.inputs[j], Tensor) and id(r.inputs[j]) in needed:
                out.append((j, fn, gj))
    return out


def _raw(t: Any) -> torch.Tensor:
    return t.data if isinstance(t, Tensor) else t


class _Labels:
    """Short names for the tensors of a tape: given names, parameter names, v<record>, in<k>."""

    def __init__(self, records: list[Record], names: Mapping[str, Tensor] | None, params: Any) -> None:
        self.names: dict[int, str] = {}
        for i, r in enumerate(records):
            for k, o in enumerate(r.outputs):
                self.names[id(o)] = f"v{i}" if o is r.output else f"v{i}_{k}"
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


def _value(t: Any) -> str:
    """'2.5' for one element, else 'shape (8, 2), norm 1.23' (one per output of a multi-output record)."""
    if t is None:
        return "None"
    if isinstance(t, tuple):
        return "(" + "; ".join(_value(_raw(x)) for x in t) + ")"
    if t.numel() == 1:
        return f"{t.item():.6g}"
    norm = float(torch.linalg.vector_norm(t.double()))
    return f"shape {tuple(t.shape)}, norm {norm:.4g}"
