"""Reductions: sum, mean, max, min, amax, amin and logsumexp (softmax lives with the normalisers)."""

from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any

import torch

from ..engine.errors import IndexShapeError, call_site, scope_text
from ..engine.primitives import describe, primitive
from ..engine.state import current
from ..engine.tensors import Tensor, wrap
from ._operands import raw
from .gathering import gather_scatter

__all__ = ["sum", "mean", "max", "min", "amax", "amin", "logsumexp"]

MaxResult = namedtuple("MaxResult", ["values", "indices"])
MinResult = namedtuple("MinResult", ["values", "indices"])


def _dims(ndim: int, dim: Any) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(d % ndim if ndim else 0 for d in dims)


def _kept(shape: torch.Size, dim: Any) -> list[int]:
    """``shape`` with the reduced dimensions set to 1 (the keepdim=True shape)."""
    kept = list(shape)
    for d in _dims(len(shape), dim):
        if kept:
            kept[d] = 1
    return kept


def _count(shape: torch.Size, dim: Any) -> int:
    n = 1
    for d in _dims(len(shape), dim):
        n *= shape[d] if shape else 1
    return n


def _spread(g: Any, x: Any, dim: Any) -> Any:
    """Broadcast a reduced gradient back over the reduced dimensions of ``x``."""
    return g.reshape(_kept(x.shape, dim)).expand(x.shape)


def _sum_fwd(x: torch.Tensor, dim: Any = None, keepdim: bool = False) -> torch.Tensor:
    return torch.sum(x) if dim is None else torch.sum(x, dim, keepdim)


def _mean_fwd(x: torch.Tensor, dim: Any = None, keepdim: bool = False) -> torch.Tensor:
    return torch.mean(x) if dim is None else torch.mean(x, dim, keepdim)


# ``full=True`` is torch.max(x) / torch.min(x), the whole-tensor reduction: it differs from amax in
# torch in two corners, and tapegrad follows each: its result keeps the sign of the zero it found
# first, and a NaN result sends the gradient to the NaN elements (amax's to none: 0/0 = NaN).
def _max_fwd(x: torch.Tensor, dim: Any = None, keepdim: bool = False, full: bool = False) -> torch.Tensor:
    if full:
        return torch.max(x)
    return torch.amax(x) if dim is None and not keepdim else torch.amax(x, () if dim is None else dim, keepdim)


def _min_fwd(x: torch.Tensor, dim: Any = None, keepdim: bool = False, full: bool = False) -> torch.Tensor:
    if full:
        return torch.min(x)
    return torch.amin(x) if dim is None and not keepdim else torch.amin(x, () if dim is None else dim, keepdim)


def _max_vjp(g: Any, out: Any, x: Any, dim: Any = None, keepdim: bool = False, full: bool = False) -> Any:
    kept = _kept(x.shape, dim)
    data, found = raw(x), raw(out).reshape(kept)
    hit = data.isnan() if full and bool(found.isnan().any()) else data == found
    ties = hit.to(data.dtype)  # ties share the gradient
    share = ties / ties.sum(_dims(x.ndim, dim) if x.ndim else (), keepdim=True)
    return _spread(g, x, dim) * share


def _sum_vjp(g: Any, out: Any, x: Any, dim: Any = None, keepdim: bool = False) -> Any:
    return g.expand(x.shape) if dim is None else _spread(g, x, dim)


def _mean_vjp(g: Any, out: Any, x: Any, dim: Any = None, keepdim: bool = False) -> Any:
    if dim is None:  # the loss's mean: a 0-d gradient expands as it is
        return (g / x.numel()).expand(x.shape)
    return _spread(g / _count(x.shape, dim), x, dim)


_sum = primitive("sum", _sum_fwd, [_sum_vjp], saves=())
_mean = primitive("mean", _mean_fwd, [_mean_vjp], saves=())
_amax = primitive(
    "max", _max_fwd, [_max_vjp], "amax: the largest values; tied maxima share the gradient.", saves=(0, "output")
)
_amin = primitive(
    "min", _min_fwd, [_max_vjp], "amin: the smallest values; tied minima share the gradient.", saves=(0, "output")
)


def _to_index(g: Any, out: Any, x: Any, dim: int, keepdim: bool = False, largest: bool = True) -> Any:
    """max(dim) / min(dim): the whole gradient goes to the returned index, as torch sends it."""
    found = torch.max(raw(x), dim, keepdim=True) if largest else torch.min(raw(x), dim, keepdim=True)
    if not keepdim and x.ndim:
        g = g.unsqueeze(dim)
    return gather_scatter(g, dim=dim, index=found.indices, shape=tuple(x.shape))


_max_dim = primitive(
    "max_dim",
    lambda x, dim, keepdim=False: torch.max(x, dim, keepdim).values,
    [_to_index],
    "max(x, dim): the values of torch.max along dim; the gradient goes to the returned (first) index.",
    saves=(0,),
)
_min_dim = primitive(
    "min_dim",
    lambda x, dim, keepdim=False: torch.min(x, dim, keepdim).values,
    [lambda g, out, x, dim, keepdim=False: _to_index(g, out, x, dim, keepdim, largest=False)],
    "min(x, dim): the values of torch.min along dim; the gradient goes to the returned (first) index.",
    saves=(0,),
)
_logsumexp = primitive(
    "logsumexp",
    lambda x, dim, keepdim=False: torch.logsumexp(x, dim, keepdim),
    [lambda g, out, x, dim, keepdim=False: _spread(g, x, dim) * (x - _spread(out, x, dim)).exp()],
    saves=(0, "output"),
)


def sum(x: Any, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Any:
    """Sum of all elements, or along ``dim`` (an int or a tuple), as torch.sum."""
    return _sum(x) if dim is None else _sum(x, dim=dim, keepdim=keepdim)


def mean(x: Any, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Any:
    """Mean of all elements, or along ``dim``, as torch.mean."""
    return _mean(x) if dim is None else _mean(x, dim=dim, keepdim=keepdim)


def max(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
    """The largest element (tied maxima share the gradient); with ``dim``, a ``(values, indices)``
    pair as torch.max returns, the gradient going to the returned index; with a tensor, `maximum`."""
    return _extreme("max", x, dim, keepdim)


def min(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
    """The smallest element; with ``dim``, ``(values, indices)`` as torch.min; with a tensor, `minimum`."""
    return _extreme("min", x, dim, keepdim)


# op: (all elements, along dim, torch's arg function, result type, the elementwise op of two tensors)
_EXTREMA = {
    "max": (_amax, _max_dim, torch.argmax, MaxResult, "maximum"),
    "min": (_amin, _min_dim, torch.argmin, MinResult, "minimum"),
}


def _extreme(op: str, x: Any, dim: Any, keepdim: bool) -> Any:
    whole, along, arg, result, elementwise = _EXTREMA[op]
    if dim is None:
        return whole(x, full=True)
    if isinstance(dim, (Tensor, torch.Tensor)):
        from . import extrema  # extrema imports this module

        return getattr(extrema, elementwise)(x, dim)
    _dim_in_range(op, x, dim)
    values = along(x, dim=dim, keepdim=keepdim)
    indices = arg(raw(x), dim, keepdim)
    return result(values, wrap(indices) if isinstance(x, Tensor) else indices)


def _dim_in_range(op: str, x: Any, dim: int) -> None:
    n = builtins.max(raw(x).dim(), 1)
    if not -n <= dim < n:
        raise IndexShapeError(
            f"{op}: cannot apply to {describe([x])} with dim={dim}{scope_text(current().scope)}, called at "
            f"{call_site()}: dimension out of range (expected in [{-n}, {n - 1}])"
        )


def _reduced(dim: Any) -> Any:
    return None if dim is None or (isinstance(dim, (tuple, list)) and not dim) else dim


def amax(x: Any, dim: int | tuple[int, ...] = (), keepdim: bool = False) -> Any:
    """The largest values along ``dim`` (all dimensions by default), as torch.amax: ties share the gradient."""
    dim = _reduced(dim)
    return _amax(x) if dim is None and not keepdim else _amax(x, dim=dim, keepdim=keepdim)


def amin(x: Any, dim: int | tuple[int, ...] = (), keepdim: bool = False) -> Any:
    """The smallest values along ``dim`` (all dimensions by default), as torch.amin: ties share the gradient."""
    dim = _reduced(dim)
    return _amin(x) if dim is None and not keepdim else _amin(x, dim=dim, keepdim=keepdim)


def logsumexp(x: Any, dim: int | tuple[int, ...], keepdim: bool = False) -> Any:
    """log(sum(exp(x))) along ``dim``, computed stably."""
    return _logsumexp(x, dim=dim, keepdim=keepdim)
