"""Index-driven primitives: gather and its adjoint gather_scatter (each the other's VJP), masked_fill."""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import IndexShapeError, ShapeError, call_site
from ..engine.primitives import Primitive, primitive
from ..engine.tensors import Tensor
from ._broadcast import broadcast_to
from ._operands import raw
from .shape import _where

__all__ = ["gather", "gather_scatter", "masked_fill"]

_gather = primitive(
    "gather",
    lambda x, dim, index: torch.gather(x, dim, index),
    [lambda g, out, x, dim, index: gather_scatter(g, dim=dim, index=index, shape=tuple(x.shape))],
    "gather(x, dim, index): x's values picked along dim by an integer index tensor (torch.gather).",
    saves=(),
)


def _scatter_add(g: torch.Tensor, dim: int, index: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return g.new_zeros(shape).scatter_add_(dim, index, g)


gather_scatter: Primitive = primitive(
    "gather_scatter",
    _scatter_add,
    [lambda g, out, x, dim, index, shape: _gather(g, dim=dim, index=index)],
    "gather_scatter(g, dim, index, shape): zeros of `shape` with g added at the gathered positions "
    "(the VJP of gather; repeated indices add up).",
    saves=(),
)


def gather(input: Any, dim: int, index: Any) -> Any:
    """Values of ``input`` along ``dim`` at ``index`` (an integer tensor of input's rank), as torch.gather."""
    idx = raw(index)
    if not isinstance(idx, torch.Tensor) or idx.is_floating_point() or idx.dtype is torch.bool:
        raise TypeError(f"gather: index must be an integer tensor, got {_kind(idx)} (called at {call_site()})")
    data = raw(input)
    if idx.dim() != data.dim():
        raise ShapeError(
            f"gather: index {tuple(idx.shape)} has {idx.dim()} dimensions but input {tuple(data.shape)} has "
            f"{data.dim()} (called at {call_site()})"
        )
    size = data.shape[dim] if data.dim() else 1
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= size):
        raise IndexShapeError(
            f"gather: index values lie in [{int(idx.min())}, {int(idx.max())}], outside [0, {size - 1}] for "
            f"dim {dim} of input {tuple(data.shape)} (called at {call_site()})"
        )
    return _gather(input, dim=dim, index=idx)


def _kind(x: Any) -> str:
    return f"a {x.dtype} tensor" if isinstance(x, torch.Tensor) else type(x).__name__


_masked_fill = primitive(
    "masked_fill",
    lambda x, mask, value: x.masked_fill(mask, value),
    [lambda g, out, x, mask, value: _where(mask, 0.0, g), None],
    "masked_fill(x, mask, value): x with `value` where the bool mask (x's shape) holds; no gradient there.",
    saves=(1,),
)


def masked_fill(input: Any, mask: Any, value: Any) -> Any:
    """``input`` with ``value`` where the boolean ``mask`` (broadcast to input's shape) holds, as torch.

    A tensor ``value`` (0-d) gets its gradient too, through ``where``.
    """
    m = raw(mask)
    if not isinstance(m, torch.Tensor) or m.dtype is not torch.bool:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {_kind(m)} (called at {call_site()})")
    shape = raw(input).shape
    try:
        full = torch.broadcast_shapes(shape, m.shape)
    except RuntimeError:
        raise ShapeError(
            f"masked_fill: mask of shape {tuple(m.shape)} does not broadcast to input {tuple(shape)} "
            f"(called at {call_site()})"
        ) from None
    m = m.expand(full)
    if full != shape:  # a mask with more dimensions broadcasts the input too, as torch.masked_fill
        input = broadcast_to(input, full) if isinstance(input, Tensor) else raw(input).expand(full)
    if isinstance(value, Tensor):
        from .shape import where

        return where(m, value, input)
    return _masked_fill(input, m, value=float(value) if isinstance(value, torch.Tensor) else value)
