"""squeeze, unsqueeze, flatten and unflatten (torch's names, each one recorded ``reshape``), and the
multi-output views: ``split_with_sizes`` (split, chunk and tensor_split) and ``unbind``, one record each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..engine.errors import IndexShapeError, ShapeError, call_site
from ..engine.primitives import Primitive, primitive
from ._operands import raw
from .shape import cat, reshape, stack

__all__ = ["squeeze", "unsqueeze", "flatten", "unflatten", "unbind"]


def _reshaped(op: str, input: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    x = raw(input)
    try:
        shape = fn(torch.empty(x.shape, device="meta")).shape
    except (RuntimeError, IndexError, TypeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise ShapeError(f"{op}: cannot apply to shape {tuple(x.shape)}: {reason} (called at {call_site()})") from None
    return input if shape == x.shape else reshape(input, shape)


def squeeze(input: Any, dim: int | Sequence[int] | None = None) -> Any:
    """``input`` without dimensions of size 1 (only those in ``dim`` when given), as torch.squeeze."""
    dims = dim if dim is None or isinstance(dim, int) else tuple(dim)
    return _reshaped("squeeze", input, lambda t: t.squeeze() if dims is None else t.squeeze(dims))


def unsqueeze(input: Any, dim: int) -> Any:
    """``input`` with a new dimension of size 1 at ``dim``, as torch.unsqueeze."""
    return _reshaped("unsqueeze", input, lambda t: t.unsqueeze(dim))


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Any:
    """``input`` with dimensions ``start_dim..end_dim`` merged into one, as torch.flatten."""
    return _reshaped("flatten", input, lambda t: t.flatten(start_dim, end_dim))


def unflatten(input: Any, dim: int, sizes: Sequence[int]) -> Any:
    """``input`` with dimension ``dim`` split into ``sizes`` (one may be -1), as torch.unflatten."""
    return _reshaped("unflatten", input, lambda t: t.unflatten(dim, tuple(sizes)))


# One record for all the pieces (a transformer's q, k, v); the gradient is the pieces' cotangents put
# back together, zeros for a piece nobody used, as torch's split and unbind backward do.
split_with_sizes: Primitive = primitive(
    "split_with_sizes",
    lambda x, sizes, dim: x.split_with_sizes(sizes, dim),
    [lambda g, out, x, sizes, dim: cat(g, dim)],
    "split_with_sizes(x, sizes, dim): the consecutive pieces of x along dim with the given sizes (views).",
    fast_vjp=[lambda g, out, x, sizes, dim: torch.cat(g, dim)],
    saves=(),
    multi_output=True,
)
_unbind: Primitive = primitive(
    "unbind",
    lambda x, dim: x.unbind(dim),
    [lambda g, out, x, dim: stack(g, dim)],
    "unbind(x, dim): the slices of x along dim, each without that dimension (views).",
    fast_vjp=[lambda g, out, x, dim: torch.stack(g, dim)],
    saves=(),
    multi_output=True,
)


def unbind(input: Any, dim: int = 0) -> tuple[Any, ...]:
    """The slices of ``input`` along ``dim``, each without that dimension, as torch.unbind: one record."""
    x = raw(input)
    if not -x.dim() <= dim < max(x.dim(), 1) or x.dim() == 0:
        raise IndexShapeError(
            f"unbind: dim {dim} is out of range for a tensor of shape {tuple(x.shape)} (called at {call_site()})"
        )
    return _unbind(input, dim=dim)
