"""Item assignment, ``x[idx] = value``: an in-place write, recorded as an index-put while a tape tracks it.

Off the tape it is torch's ``x[idx] = value`` on the data. On a recorded (or watched) tensor, or
with a recorded ``value``, the write is also one ``index_put`` record whose output is ``x`` itself:
the reverse walk pops ``x``'s gradient there and hands the gradient of the untouched positions on
to the ``x`` of before (the earlier records of the same tensor object) and the picked positions to
``value``. The write bumps the data's version counter, so a record that saved the old values still
raises `tg.InPlaceError` at the replay, as torch does.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import IndexShapeError, TapeError, call_site, describe_tensor
from ..engine.primitives import Primitive, check_finite, primitive
from ..engine.state import current
from ..engine.tensors import Tensor, wrap
from .shape import _plain_index

__all__: list[str] = []  # x[idx] = value is Tensor.__setitem__; the primitive is for the tape


def _put(x: torch.Tensor, value: Any, idx: Any) -> torch.Tensor:
    out = x.clone()
    out[idx] = value
    return out


def _fit(g: Any, like: Any) -> Any:
    """The gradient of the picked positions, summed back to the value's shape and dtype."""
    shape = tuple(like.shape)
    if len(shape) > g.ndim:  # torch drops leading ones of the value: x[0] = y with y (1, n)
        g = g.reshape((1,) * (len(shape) - g.ndim) + tuple(g.shape))
    while g.ndim > len(shape):
        g = g.sum(0)
    if tuple(g.shape) != shape:
        g = g.sum_to_size(shape)
    return g if g.dtype == like.dtype else g.to(like.dtype)


index_put: Primitive = primitive(
    "index_put",
    _put,
    [lambda g, out, x, value, idx: index_put(g, 0.0, idx=idx), lambda g, out, x, value, idx: _fit(g[idx], value)],
    "index_put(x, value, idx): x with value written at x[idx] (what `x[idx] = value` records); the "
    "gradient of x is zero at idx, value's is the gradient there summed to its shape.",
    saves=(),
)


def _tracked(t: Any, tapes: list) -> bool:
    return isinstance(t, Tensor) and (t.requires_grad or any(tape.watches(t) for tape in tapes))


def setitem(x: Tensor, idx: Any, value: Any) -> None:
    """``x[idx] = value`` as torch: ints, slices, None, Ellipsis, integer/bool tensors; ``value`` a
    number or a tensor broadcasting to ``x[idx]`` (cast to x's dtype)."""
    state = current()
    tapes = state.tapes if state.grad_enabled else []
    if tapes and x.requires_grad and x._tape is None:
        raise TapeError(
            f"x[...] = value: x {describe_tensor(x.data)} is a leaf that requires grad and a tape is open; torch "
            "refuses to change it in place too. Write under `with tg.no_grad():` (as an optimizer does) or work on "
            f"a copy (called at {call_site()})"
        )
    plain = _plain_index(idx)
    v = value.data if isinstance(value, Tensor) else value
    data = x.data
    try:
        data[plain] = v
    except (IndexError, RuntimeError, TypeError, ValueError) as err:
        what = describe_tensor(v) if isinstance(v, torch.Tensor) else repr(v)
        raise IndexShapeError(
            f"x[...] = value: cannot write {what} into {describe_tensor(data)} at {idx!r} (called at "
            f"{call_site()}): {str(err).splitlines()[0]}"
        ) from err
    if state.anomaly:
        check_finite(data, "index_put", "forward")
    if not tapes or not (_tracked(x, tapes) or _tracked(value, tapes)):
        return
    # the x of before: x itself when a tape tracks it, else a constant standing for its old values
    before = x if _tracked(x, tapes) else wrap(data)
    requires = x.requires_grad or (isinstance(value, Tensor) and value.requires_grad)
    x.requires_grad = requires and data.is_floating_point()
    tapes[-1].record(index_put, (before, value), [data, v], x, {"idx": plain}, state, requires)
