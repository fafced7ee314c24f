"""The one reverse walk over a tape's records: eager replay, `tg.trace`, viz.explain and hooks all run it.

As in HIPS autograd's ``backward_pass``, `walk` is three steps: `liveness` (which tensors lead back
to a source), `backprop` (the loop: pop the records in reverse, call each VJP rule for the inputs
that lead back, check each gradient, sum it into that input's) and `result`. What differs between
its users is passed by keyword: ``raw`` picks first order on raw torch (a ``fast_vjp`` where there is
one) or the reference rule on `tg.Tensor`s, recorded by the open tapes (higher order, anomaly
mode); a ``listener`` (`Listener`) is told of every rule call, cast,
sum and final leaf gradient: `tracegen` writes a graph from it, viz.explain a story, `Tape.backward`
fires hooks. Around it: `seed`, `leading_to` (the one reachability test), `captured`, `first_consumers`.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from itertools import repeat
from operator import and_, is_not
from typing import Any, Protocol

import torch

from .errors import ShapeError, TapeError, call_site
from .op_errors import check_finite
from .primitives import Record
from .reach import captured, first_consumers, leading_to
from .state import current
from .tensors import Tensor, wrap
from .walk_checks import alone as _alone
from .walk_checks import (
    check_recorded,
    check_versions,
    checked_gradient,
    gradient_tuple,
    no_vjp_error,
    rule_name,
    unchanged,
)

__all__ = [
    "Listener", "walk", "liveness", "backprop", "result", "first_consumers",
    "leading_to", "captured", "seed",
]  # fmt: skip
_REQUIRES, _FALSE, _NONE = repeat("requires_grad"), repeat(False), repeat(None)  # `_call_all`'s map arguments


class Listener(Protocol):
    """What a walk tells whoever listens, in the order it happens (the defaults ignore it).

    Gradients are the objects the walk holds (raw torch or `tg.Tensor`, by the mode), so a
    listener can follow each by identity: from the seed through rule calls, casts and sums to
    the leaves.
    """

    ready_at: dict[int, list[Tensor]] | None = None
    """{record index: leaves} (`first_consumers`): the walk calls `ready` for each leaf once it is past
    that record, the first that reads it. The walk pops the entries it fired."""

    def vjp(self, r: Record, i: int | None, rule: Callable, g: Any, result: Any) -> None:
        """``rule(g, out, *args, **params)`` of record ``r`` ran for input ``i`` (None: a rule of all
        inputs; ``result`` is then its tuple) and returned ``result``."""
        return None

    def cast(self, before: Any, after: Any) -> None:
        """A rule's gradient was made what the walk sums (`walk_checks.checked_gradient`): unwrapped, cast."""
        return None

    def add(self, prev: Any, g: Any, total: Any) -> None:
        """Two gradients of one tensor were summed: ``total = prev + g``."""
        return None

    def ready(self, leaf: Tensor, g: Any) -> None:
        """``leaf``'s gradient is final (it is in `ready_at`); the walk forgets it."""
        return None


def walk(
    records: list[Record],
    target: Tensor,
    seed: Any,
    *,
    raw: bool,
    sources: Sequence[Tensor] | None = None,
    consume: bool = False,
    listener: Listener | None = None,
) -> dict[int, tuple[Tensor, Any]]:
    """Walk ``records`` in reverse from ``target`` (gradient ``seed``); returns {id: (tensor, gradient)}.

    ``sources=None`` means the leaves that require grad (`Tape.backward`, `tg.trace`). ``consume``
    pops the records off the list as they are replayed (a one-shot tape frees memory as it goes: a
    record's saved tensors go with it, each intermediate gradient once its tensor's record used it).
    """
    live = liveness(records, sources)
    if not (target.requires_grad if live is None else id(target) in live):
        check_recorded(records, target)
        return {}
    grads, owners = {id(target): seed}, {id(target): target}
    keep = () if sources is None else {id(s) for s in sources}  # a source a record made: kept when consumed
    state = current()
    replaying = state.replaying
    try:
        backprop(records if consume else records.copy(), grads, owners, live, keep, raw, listener)
    finally:
        state.replaying = replaying
    return result(grads, owners, sources)


def backprop(
    stack: list[Record], grads: dict[int, Any], owners: dict[int, Tensor], live: set[int] | None,
    keep: Container[int], raw: bool, listener: Listener | None,
) -> None:  # fmt: skip
    """The loop: pop each record, call its rules for the inputs that lead back (``live``; None: those
    that require grad), sum each gradient into ``grads`` (by tensor id; ``owners`` holds the tensors)."""
    args: Sequence[Any]  # what each rule gets after ``g`` and the output: the raw data saved, or the inputs
    want, in_place = (torch.Tensor if raw else Tensor), raw and listener is None  # sum in place, as torch's engine
    state = current()
    anomaly = state.anomaly
    ready_at = listener.ready_at if listener is not None else None
    while stack:
        if ready_at and len(stack) in ready_at:
            _fire(ready_at.pop(len(stack)), grads, listener)
        r = stack.pop()
        o: Any = r.output
        key = id(o)  # (a multi-output record's tuple: `_cotangents` pops a gradient per output)
        g = grads.pop(key, None) if o.__class__ is not tuple else _cotangents(r, o, grads, owners, keep, raw)
        if g is None:
            continue
        owners.pop(key, None)  # consumed: neither the gradient nor the tensor is held past this record
        if key in keep:
            grads[key] = g  # a source: final now (its consumers came later on the tape), and returned
        params, versions, every, i = r.params, r.versions, None, -1
        if raw:  # first order: the fast rule if any, on the raw data ``r`` saved, checked unchanged since
            (of_all, per_input, masked), args, o = r.primitive.first_order, r.args, unchanged(r, o)
        else:  # higher order: the reference rule on the tg.Tensors, recorded by the open tapes (a NaN made
            check_versions(r)  # by a forward op in it names ``r`` in its anomaly message: ``State.replaying``)
            state.replaying = r
            (of_all, per_input, masked), args = r.primitive.reference, r.inputs
        for a in r.inputs:  # one pass: which inputs need a gradient, their VJP, the sum
            i += 1
            if versions[i] is None or not (a.requires_grad if live is None else id(a) in live):
                continue  # not a tg.Tensor (no saved version), or it leads to no source
            if per_input is not None:
                rule = per_input[i] or _no_rule(r, i)
                gi = rule(g, o, *args, **params) if params else rule(g, o, *args)
                if listener is not None:
                    listener.vjp(r, i, rule, g, gi)
            else:
                every = every or _call_all(r, of_all, masked, live, g, o, args, raw, listener)
                gi = every[i]
            if gi is None:
                continue
            d = a.data  # the usual case costs a class test and two comparisons
            if gi.__class__ is not want or gi.shape != d.shape or gi.dtype != d.dtype:
                gi = _cast(r, i, gi, raw, listener)
            if anomaly:
                check_finite(gi.data if isinstance(gi, Tensor) else gi, rule_name(r.primitive, raw), "backward", r)
            k = id(a)
            prev = grads.get(k)
            if prev is None:
                grads[k], owners[k] = gi, a
            else:
                grads[k] = prev.add_(gi) if in_place and _alone(prev) else _sum(prev, gi, listener)  # (only ours)
    if ready_at:
        for leaves in ready_at.values():
            _fire(leaves, grads, listener)


def liveness(records: Sequence[Record], sources: Sequence[Tensor] | None) -> set[int] | None:
    """Ids of the tensors that lead back to a source, or None when every tensor that requires grad
    does (``sources=None``: the leaves that require grad; no pass over the tape is needed)."""
    if sources is None:
        return None
    live = {id(s) for s in sources}
    for r in records:
        for a in r.inputs:
            if id(a) in live:
                live.update(map(id, r.outputs))
                break
    return live


def result(grads: dict[int, Any], owners: dict[int, Tensor], sources: Any) -> dict[int, tuple[Tensor, Any]]:
    """What the walk returns: the sources' gradients, or with ``sources=None`` everything left,
    which is the leaves (no record produced them)."""
    if sources is None:
        return {k: (owners[k], g) for k, g in grads.items()}
    return {id(s): (s, grads[id(s)]) for s in sources if id(s) in grads}


def _cotangents(r: Record, outs: tuple, grads: dict[int, Any], owners: dict[int, Tensor], keep: Container[int],
                raw: bool) -> tuple | None:  # fmt: skip
    """A multi-output record's cotangents, popped as `backprop` pops one output's (None: no output has one);
    zeros of an output's shape, or None (``unused_cotangents="none"``), for an output nobody used."""
    gs: list[Any] = []
    found = False
    for o in outs:
        key = id(o)
        g = grads.pop(key, None)
        if g is not None:
            found = True
            del owners[key]
            if key in keep:
                grads[key] = g
        gs.append(g)
    if not found:
        return None
    if r.primitive.fills_unused:
        for k, o in enumerate(outs):
            d = o.data  # (its metadata; the values may have been released)
            if gs[k] is None and d.is_floating_point():
                zeros = torch.zeros(d.shape, dtype=d.dtype, device=d.device)
                gs[k] = zeros if raw else wrap(zeros)
    return tuple(gs)


def _call_all(
    r: Record, rule: Any, masked: bool, live: Any, g: Any, o: Any, args: Any, raw: bool, listener: Any
) -> tuple:
    """A rule of all inputs, once per record (``masked``: told which inputs need a gradient): a gradient each."""
    if rule is None:
        raise no_vjp_error(r)
    params = r.params
    if masked:  # the loop's test (`backprop`) for every input at once, by maps: no Python frame per input
        leads = map(getattr, r.inputs, _REQUIRES, _FALSE) if live is None else map(live.__contains__, map(id, r.inputs))
        params = {**params, "needs_input_grad": list(map(and_, map(is_not, r.versions, _NONE), leads))}
    grads = rule(g, o, *args, **params)
    if grads.__class__ is not tuple or len(grads) != len(r.inputs):
        grads = gradient_tuple(r, grads, raw)
    if listener is not None:
        listener.vjp(r, None, rule, g, grads)
    return grads


def _no_rule(r: Record, i: int) -> Callable:
    raise no_vjp_error(r, i)


def _cast(r: Record, i: int, gi: Any, raw: bool, listener: Listener | None) -> Any:
    fixed = checked_gradient(r, i, gi, raw)
    if listener is not None:
        listener.cast(gi, fixed)
    return fixed


def _sum(prev: Any, gi: Any, listener: Listener | None) -> Any:
    total = prev + gi
    if listener is not None:
        listener.add(prev, gi, total)
    return total


def _fire(leaves: list[Tensor], grads: dict[int, Any], listener: Any) -> None:
    for leaf in leaves:
        g = grads.pop(id(leaf), None)
        if g is not None:
            listener.ready(leaf, g)


def seed(target: Tensor, grad_output: Any, raw: bool, caller: str = "gradient") -> Any:
    """The gradient a walk starts from: ones for a one-element target, else ``grad_output`` (of the
    target's shape), as raw torch when ``raw``. ``caller`` names the call in the errors."""
    if grad_output is None:
        if target.data.numel() != 1:
            needs = "a scalar loss" if caller == "trace" else "grad_output of the same shape"
            raise TapeError(
                f"{caller}: the target has shape {tuple(target.shape)}; a non-scalar target needs {needs} "
                f"(called at {call_site()})"
            )
        ones = torch.ones_like(target.data)
        return ones if raw else wrap(ones)
    g = grad_output.data if isinstance(grad_output, Tensor) else torch.as_tensor(grad_output)
    if g.shape != target.data.shape:
        raise ShapeError(
            f"{caller}: grad_output has shape {tuple(g.shape)} but the target has shape "
            f"{tuple(target.shape)} (called at {call_site()})"
        )
    if raw:
        return g
    return grad_output if isinstance(grad_output, Tensor) else wrap(g)
