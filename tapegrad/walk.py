"""The one reverse walk over a tape's records, shared by eager replay, `tg.trace` and gradient hooks.

The walk pops the records in reverse, calls each VJP rule for the inputs that lead back to a
source, checks each gradient's shape, and accumulates (``prev + g``). What differs between its
users is small and passed in:

- ``raw``: the rules get raw torch tensors (first order; a primitive's ``fast_vjp`` runs when it
  has one) or `tg.Tensor` objects (higher order and anomaly mode: the reference rule, recorded by the
  open tapes);
- ``log``: an object told of every rule call and every sum (`tracegen` writes code from it);
- ``ready``: ``(at, callback)``: ``at`` maps a record index to the leaves whose gradient is final
  once the walk is past that record (their first consumer on the tape); the walk then calls
  ``callback(leaf, gradient)`` at once, which is how post-accumulate-grad hooks overlap the rest
  of the backward pass. Such leaves are left out of the returned dict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .errors import InPlaceError, TapeError, call_site, describe_tensor, format_site
from .primitive import Record, check_finite, describe
from .state import State, current
from .tensor import Tensor, wrap

__all__ = ["walk", "first_consumers"]


def walk(
    records: list[Record],
    target: Tensor,
    seed: Any,
    sources: Sequence[Tensor] | None,
    raw: bool,
    consume: bool = False,
    log: Any = None,
    ready: tuple[dict[int, list[Tensor]], Callable[[Tensor, Any], None]] | None = None,
    state: State | None = None,
) -> dict[int, tuple[Tensor, Any]]:
    """Walk ``records`` in reverse from ``target`` (gradient ``seed``); returns {id: (tensor, gradient)}.

    ``sources=None`` means the leaves that require grad (`Tape.backward`, `tg.trace`): then a
    tensor leads back to one exactly when it requires grad, and no forward pass over the tape is
    needed. ``consume`` pops the records off the list as they are replayed (a one-shot tape frees
    memory as it goes: a record's saved tensors go with it, and each intermediate gradient is dropped
    once the record that produced its tensor has used it). ``state`` is the calling thread's `State`
    when the caller has it at hand.
    """
    if sources is None:
        live = source_ids = None
        if not target.requires_grad:
            check_recorded(records, target)
            return {}
    else:
        source_ids = {id(s) for s in sources}
        live = set(source_ids)  # ids of tensors that depend on a source
        for r in records:
            for a in r.inputs:
                if id(a) in live:
                    live.add(id(r.output))
                    break
        if id(target) not in live:
            if id(target) in source_ids:
                return {id(target): (target, seed)}
            check_recorded(records, target)
            return {}
    found: dict[int, tuple] = {}
    if state is None:
        state = current()
    anomaly = state.anomaly
    want = _TORCH if raw else Tensor  # the class the walk accumulates: a replay's own kind of tensor
    track = not raw  # VJP rules then run tapegrad ops: a forward anomaly inside them names this record
    saved_replaying = state.replaying
    grads = {id(target): seed}
    owners = {id(target): target}  # what received a gradient and was not consumed yet (the leaves, in the end)
    at = on_ready = None
    if ready is not None:
        at, on_ready = ready
    stack = records if consume else records.copy()
    try:
        while stack:
            if at is not None and len(stack) in at:
                _fire(at.pop(len(stack)), grads, on_ready)
            r = stack.pop()
            out = r.output
            key = id(out)
            g = grads.pop(key, None)
            if g is None:
                continue
            del owners[key]  # consumed: neither the gradient nor the tensor is held past this record
            if source_ids is not None and key in source_ids:
                found[key] = (out, g)
            versions = r.versions  # the in-place check, inlined: it runs for every record
            args: Sequence[Any] = r.args
            for d, v in zip(args, versions):
                if v is not None and v >= 0 and d._version != v:
                    check_versions(r)
            v = r.out_version
            if v >= 0 and out.data._version != v:
                check_versions(r)
            inputs = r.inputs
            prim = r.primitive
            o: Any
            if raw:
                o = out.data if v >= 0 else out  # an output not saved: its tg.Tensor, for metadata
                vjp, vjps = prim.first_order
            else:
                args, o = inputs, out
                vjps, vjp = prim.vjps, prim.vjp
                if track:
                    state.replaying = r
            params, all_grads = r.params, None
            i = -1
            for a in inputs:  # one pass: which inputs need a gradient, their VJP, accumulation
                i += 1
                if versions[i] is None or not (a.requires_grad if live is None else id(a) in live):
                    continue  # not a tg.Tensor (no saved version), or it leads to no source
                if vjps is not None:
                    rule = vjps[i]
                    if rule is None:
                        raise no_vjp_error(r, i)
                    gi = rule(g, o, *args, **params) if params else rule(g, o, *args)
                    if log is not None:
                        log.vjp(r, i, rule, g, gi)
                elif vjp is not None:
                    if all_grads is None:
                        all_grads = vjp(g, o, *args, **params)
                        if all_grads.__class__ is not tuple or len(all_grads) != len(inputs):
                            all_grads = _all_grads(r, all_grads, raw)
                        if log is not None:
                            log.vjp(r, None, vjp, g, all_grads)
                    gi = all_grads[i]
                else:
                    raise no_vjp_error(r)
                if gi is None:
                    continue
                d = a.data
                # the usual case costs a class test and two comparisons
                if gi.__class__ is not want or gi.shape != d.shape or gi.dtype != d.dtype:
                    fixed = checked_gradient(r, i, gi, raw)
                    if log is not None:
                        log.fix(gi, fixed)
                    gi = fixed
                if anomaly:
                    check_finite(gi.data if isinstance(gi, Tensor) else gi, rule_name(prim, raw), "backward", r)
                k = id(a)
                prev = grads.get(k)
                if prev is None:
                    grads[k] = gi
                    owners[k] = a
                else:
                    total = prev + gi
                    if log is not None:
                        log.add(prev, gi, total)
                    grads[k] = total
        if at:
            for leaves in at.values():
                _fire(leaves, grads, on_ready)
    finally:
        if track:
            state.replaying = saved_replaying
    if source_ids is None:  # what is left are the leaves: no record produced them
        return {k: (owners[k], g) for k, g in grads.items()}
    for k in source_ids:
        if k in grads:
            found[k] = (owners[k], grads[k])
    return found


def _fire(leaves: list, grads: dict, on_ready: Any) -> None:
    for leaf in leaves:
        g = grads.pop(id(leaf), None)
        if g is not None:
            on_ready(leaf, g)


def first_consumers(records: list[Record], wanted: Callable[[Tensor], bool]) -> dict[int, list[Tensor]]:
    """{record index: leaves} for the leaves in ``wanted`` (a predicate), keyed by their first consumer.

    A leaf is a tensor no record on this tape produced; the reverse walk is done with its gradient
    once it is past the first record that reads it.
    """
    produced: set[int] = set()
    seen: set[int] = set()
    at: dict[int, list] = {}
    for idx, r in enumerate(records):
        for a in r.inputs:
            if isinstance(a, Tensor) and id(a) not in seen and id(a) not in produced and wanted(a):
                seen.add(id(a))
                at.setdefault(idx, []).append(a)
        produced.add(id(r.output))
    return at


def rule_name(prim: Any, raw: bool) -> str:
    """'the fast VJP of relu' or 'the VJP of relu': the rule a replay runs, for messages."""
    fast = raw and (prim.fast_vjps is not None or prim.fast_vjp is not None)
    return f"the {'fast ' if fast else ''}VJP of {prim.name}"


def no_vjp_error(r: Record, i: int | None = None) -> TapeError:
    """The error for replaying a primitive declared without a VJP (for input ``i``: its rule is None)."""
    what = "has no VJP" if i is None else f"has no VJP rule for input {i} (its vjp= entry is None)"
    return TapeError(
        f"{r.primitive.name} {what}: it cannot be differentiated ({where(r)}, on inputs "
        f"{describe(r.inputs)}); the backward pass was called at {call_site()}"
    )


_TORCH = torch.Tensor


def checked_gradient(r: Record, i: int, gi: Any, raw: bool) -> Any:
    """A VJP rule's gradient for input ``i`` of ``r``, made what the walk accumulates, as torch does:
    cast to the input's dtype; a `tg.Tensor` on a raw replay or a torch tensor on a recorded one
    converted. Anything else (not a tensor, another shape or device) raises `TapeError` naming the
    op, the input and what came back."""
    a = r.inputs[i]
    d = a.data
    rule = rule_name(r.primitive, raw)
    if not isinstance(gi, (torch.Tensor, Tensor)):
        raise TapeError(
            f"{rule} returned {type(gi).__name__} {_short(gi)} as the gradient of input {i} "
            f"({describe_tensor(d)}); a VJP rule returns a tensor (or None) per input ({where(r)})"
        )
    if gi.shape != d.shape or gi.device != d.device:
        raise TapeError(
            f"{rule} returned a gradient {describe_tensor(gi)} for input {i} {describe_tensor(d)}; it must "
            f"have the input's shape and device ({where(r)})"
        )
    if raw and isinstance(gi, Tensor):
        gi = gi.data
    elif not raw and not isinstance(gi, Tensor):
        gi = wrap(gi)
    return gi if gi.dtype == d.dtype else gi.to(d.dtype)


def _all_grads(r: Record, grads: Any, raw: bool) -> tuple:
    """A whole-op VJP rule's result as a tuple with one entry per input, or `TapeError` saying what came back."""
    n = len(r.inputs)
    if isinstance(grads, (tuple, list)) and len(grads) == n:
        return tuple(grads)
    got = f"{len(grads)} gradients" if isinstance(grads, (tuple, list)) else f"{type(grads).__name__} {_short(grads)}"
    raise TapeError(
        f"{rule_name(r.primitive, raw)} returned {got}; it must return a tuple with one gradient (or None) "
        f"for each of its {n} inputs ({where(r)})"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_recorded(records: list[Record], target: Tensor) -> None:
    """Raise `TapeError` unless some record produced ``target``."""
    if not any(r.output is target for r in records):
        raise TapeError(
            f"gradient: the target {tuple(target.shape)} was not recorded on this tape; compute "
            f"it inside `with tape:` from watched tensors (called at {call_site()})"
        )


def check_versions(r: Record) -> None:
    """Raise `InPlaceError` if a tensor ``r`` saved was modified in place after it was recorded."""
    versions = r.versions
    for d, v in zip(r.args, versions):
        if v is not None and v >= 0 and d._version != v:
            raise _inplace_error(r, _input_of(r, d), v)
    if r.out_version >= 0 and r.output.data._version != r.out_version:
        raise _inplace_error(r, r.output, r.out_version)


def _input_of(r: Record, d: Any) -> Tensor:
    for a, data in zip(r.inputs, r.args):
        if data is d:
            return a
    return r.output


def _inplace_error(r: Record, t: Tensor, version: int | None) -> InPlaceError:
    if t is r.output:
        role = "its output"
    else:  # by identity: == on tensors is elementwise
        role = "input " + ", ".join(str(i) for i, a in enumerate(r.inputs) if a is t)
    return InPlaceError(
        f"{r.primitive.name} ({where(r)}) saved {role} {describe_tensor(t.data)} for its gradient, but that "
        f"tensor was modified in place after it was recorded (version {version} -> {t.data._version}); clone "
        f"it before changing it. The backward pass was called at {call_site()}"
    )


def where(r: Record) -> str:
    """'in 2 (Linear), recorded at file.py:12 in fn': where a record came from."""
    scope = f"in {r.scope!r}, " if r.scope is not None else ""
    return f"{scope}recorded at {format_site(r.site)}"
