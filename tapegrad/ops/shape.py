"""Shape primitives: broadcast_to / sum_to (each the other's VJP), reshape, transpose, indexing,
cat, stack, where, clamp and dtype/device casts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..engine.primitives import Primitive, primitive
from ..engine.tensors import Tensor
from ._broadcast import broadcast_to, cast, sum_to
from ._operands import align, broadcast_shape, promote, raw

__all__ = [
    "broadcast_to", "sum_to", "reshape", "transpose", "permute", "index", "index_scatter",
    "cat", "stack", "where", "clamp", "cast",
]  # fmt: skip


def _shape(shape: Any) -> tuple[int, ...]:
    return tuple(shape)


# The view forwards are torch's methods themselves (C functions: no Python frame per op); the fast
# rules call torch's views on the gradient directly (no primitive call per view in the backward pass).
_reshape = primitive(
    "reshape",
    torch.Tensor.reshape,
    [lambda g, out, x, shape: reshape(g, x.shape)],
    fast_vjp=[lambda g, out, x, shape: g.reshape(x.shape)],
    saves=(),
)
_transpose = primitive(
    "transpose",
    torch.Tensor.transpose,
    [lambda g, out, x, dim0, dim1: transpose(g, dim0, dim1)],
    fast_vjp=[lambda g, out, x, dim0, dim1: g.transpose(dim0, dim1)],
    saves=(),
)


def _inverse(dims: Sequence[int]) -> list[int]:
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d % len(dims)] = i
    return inverse


_permute = primitive(
    "permute",
    torch.Tensor.permute,
    [lambda g, out, x, dims: permute(g, _inverse(dims))],
    fast_vjp=[lambda g, out, x, dims: g.permute(_inverse(dims))],
    saves=(),
)


_BASIC = (int, slice, type(None), type(Ellipsis))


def _basic(idx: Any) -> bool:
    """Whether ``idx`` is basic indexing (ints, slices, None, ...): a view, each position once."""
    if isinstance(idx, tuple):
        for i in idx:
            if not isinstance(i, _BASIC) or isinstance(i, bool):
                return False
        return True
    return isinstance(idx, _BASIC) and not isinstance(idx, bool)


def _scatter_fwd(g: torch.Tensor, idx: Any, shape: Sequence[int]) -> torch.Tensor:
    if _basic(idx):  # a view of distinct positions: add g into it (0 + g, as index_add_ gives), 2 kernels
        out = g.new_zeros(shape)
        view = out[idx]
        if view.shape == g.shape:  # else the general path below raises (no silent broadcast)
            view.add_(g)
            return out
    # Positions picked by idx, as flat offsets: handles ints, slices, masks and repeated indices.
    n = 1
    for s in shape:
        n *= s
    picked = torch.arange(n, device=g.device).reshape(shape)[idx].reshape(-1)
    flat = g.new_zeros(n).index_add_(0, picked, g.reshape(-1))
    return flat.reshape(shape)


_index = primitive(
    "index",
    lambda x, idx: x[idx],
    [lambda g, out, x, idx: index_scatter(g, idx=idx, shape=x.shape)],
    fast_vjp=[lambda g, out, x, idx: _scatter_fwd(g, idx, x.shape)],  # index_scatter's forward, no primitive call
    saves=(),
)
index_scatter: Primitive = primitive(
    "index_scatter",
    _scatter_fwd,
    [lambda g, out, x, idx, shape: _index(g, idx=idx)],
    "index_scatter(g, idx, shape): zeros of `shape` with g added at x[idx] (the VJP of indexing).",
    saves=(),
)


def _cat_vjp(g: Any, out: Any, *xs: Any, dim: int = 0) -> list[Any]:
    d = dim % out.ndim
    grads, start = [], 0
    for x in xs:
        stop = start + x.shape[d]
        grads.append(_index(g, idx=(slice(None),) * d + (slice(start, stop),)))
        start = stop
    return grads


def _stack_vjp(g: Any, out: Any, *xs: Any, dim: int = 0) -> list[Any]:
    d = dim % out.ndim
    return [_index(g, idx=(slice(None),) * d + (i,)) for i in range(len(xs))]


_cat = primitive("cat", lambda *xs, dim=0: torch.cat(xs, dim), _cat_vjp, saves=())
_stack = primitive("stack", lambda *xs, dim=0: torch.stack(xs, dim), _stack_vjp, saves=())
_where: Primitive = primitive(
    "where",
    torch.where,
    [None, lambda g, out, c, x, y: _where(c, g, 0.0), lambda g, out, c, x, y: _where(c, 0.0, g)],
    saves=(0,),
)


def _clamp_vjp(g: Any, out: Any, x: Any, min: float | None = None, max: float | None = None) -> Any:
    inside = torch.ones_like(raw(x), dtype=torch.bool)
    if min is not None:
        inside &= raw(x) >= min
    if max is not None:
        inside &= raw(x) <= max
    return g * inside.to(raw(x).dtype)


_clamp = primitive("clamp", lambda x, min=None, max=None: torch.clamp(x, min, max), [_clamp_vjp], saves=(0,))


def reshape(x: Any, shape: Sequence[int]) -> Any:
    """x with a new shape (one dimension may be -1), as torch.reshape."""
    return _reshape(x, shape=_shape(shape))


def transpose(x: Any, dim0: int, dim1: int) -> Any:
    """x with two dimensions swapped, as torch.transpose."""
    return _transpose(x, dim0=dim0, dim1=dim1)


def permute(x: Any, dims: Sequence[int]) -> Any:
    """x with its dimensions reordered, as torch.permute."""
    return _permute(x, dims=_shape(dims))


def _plain_index(idx: Any) -> Any:
    if isinstance(idx, tuple):
        return tuple(_plain_index(i) for i in idx)
    if isinstance(idx, list):
        return torch.as_tensor([raw(i) for i in idx])
    return raw(idx)


def index(x: Any, idx: Any) -> Any:
    """x[idx] with torch semantics: ints, slices, None, Ellipsis, integer and boolean tensors."""
    return _index(x, idx=_plain_index(idx))


def _same_dtype(tensors: Sequence[Any]) -> list[Any]:
    """The tensors in torch's promoted dtype (cat and stack promote as arithmetic does)."""
    tensors = list(tensors)
    dtypes = {raw(t).dtype for t in tensors if isinstance(t, (Tensor, torch.Tensor))}
    return promote(tensors) if len(dtypes) > 1 and any(isinstance(t, Tensor) for t in tensors) else tensors


def cat(tensors: Sequence[Any], dim: int = 0) -> Any:
    """Concatenate tensors along an existing dimension, as torch.cat."""
    return _cat(*_same_dtype(tensors), dim=dim)


def stack(tensors: Sequence[Any], dim: int = 0) -> Any:
    """Stack equal-shaped tensors along a new dimension, as torch.stack."""
    return _stack(*_same_dtype(tensors), dim=dim)


def where(condition: Any, x: Any, y: Any) -> Any:
    """Elements of x where condition holds, else of y (condition is a bool tensor; no gradient)."""
    cond = raw(condition)
    if isinstance(x, Tensor) or isinstance(y, Tensor):
        shape = broadcast_shape("where", cond, *(a for a in (x, y) if isinstance(a, Tensor)))
        x, y = align("where", x, y)
        x, y = (broadcast_to(a, shape=shape) if isinstance(a, Tensor) and a.shape != shape else a for a in (x, y))
    return _where(cond, x, y)


def clamp(x: Any, min: float | None = None, max: float | None = None) -> Any:
    """x limited to [min, max], as torch.clamp; the gradient is 0 outside. Tensor bounds are
    constants here (their values are used, no gradient flows to them)."""
    # raw: a tg.Tensor bound handed to torch.clamp would come back here through __torch_function__
    return _clamp(x, min=raw(min) if isinstance(min, Tensor) else min, max=raw(max) if isinstance(max, Tensor) else max)
