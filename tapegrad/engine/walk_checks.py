"""The checks the reverse walk makes, and their messages: VJP results, in-place changes, unrecorded targets.

The walk runs the cheap test inline (a class, shape and dtype comparison; a version comparison)
and calls these only when it fails, so the messages can take their time naming the op, the
input, what came back and where the op was recorded.
"""

from __future__ import annotations

import sys
from itertools import repeat
from typing import Any

import torch

from .errors import InPlaceError, TapeError, call_site, describe_tensor, format_site
from .op_errors import describe
from .primitives import Record
from .tensors import Tensor, wrap

__all__ = ["check_recorded", "check_versions", "checked_gradient", "gradient_tuple", "no_vjp_error", "rule_name"]
__all__ += ["where", "alone", "unchanged"]


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


def gradient_tuple(r: Record, grads: Any, raw: bool) -> tuple:
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
    if not any(o is target for r in records for o in r.outputs):
        raise TapeError(
            f"gradient: the target {tuple(target.shape)} was not recorded on this tape; compute "
            f"it inside `with tape:` from watched tensors (called at {call_site()})"
        )


def check_versions(r: Record) -> None:
    """Raise `InPlaceError` if a tensor ``r`` saved was modified in place after it was recorded."""
    unchanged(r, r.output)


def _input_of(r: Record, d: Any) -> Tensor:
    for a, data in zip(r.inputs, r.args):
        if data is d:
            return a
    return r.output


def _inplace_error(r: Record, t: Tensor, version: int | None) -> InPlaceError:
    outs = r.outputs
    if any(t is o for o in outs):
        which = ", ".join(str(k) for k, o in enumerate(outs) if o is t)
        role = "its output" if len(outs) == 1 else f"its output {which}"
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


def alone(t: torch.Tensor) -> bool:
    """Whether only the walk's dict holds gradient ``t`` (refs: dict, backprop's `prev`, `t`, getrefcount's;
    storage: ``t`` and the call's temporary) and it is contiguous: the next gradient may be added in place."""
    return _refcount(t) == 4 and t.is_contiguous() and _storage_users(t.untyped_storage()._cdata) == 2


_refcount, _storage_users = sys.getrefcount, torch._C._storage_Use_Count


def unchanged(r: Record, out: Tensor) -> Any:
    """What a first-order rule gets as ``r``'s output (its data; its `tg.Tensor` when not saved, for the
    metadata), once `check_versions` passed: the walk runs this for every record it replays."""
    for d, v in zip(r.args, r.versions):
        if v is not None and v >= 0 and d._version != v:
            raise _inplace_error(r, _input_of(r, d), v)
    v = r.out_version
    if v.__class__ is tuple:  # the saved outputs of a multi-output record
        return tuple(map(_saved_output, repeat(r), out, v))
    if v < 0:
        return out
    return _saved_output(r, out, v)


def _saved_output(r: Record, out: Tensor, v: int) -> Any:
    data = out.data
    if data._version != v:
        raise _inplace_error(r, out, v)
    return data
