"""Products and running reductions: prod, cumsum, cumprod, cummax and cummin.

The VJPs of prod and cumprod divide by the input where it has no zeros (one op), and otherwise
take each product with one factor set to 1 (exact at zeros, as torch; n times the memory along
the reduced dimension, so only when a zero is present).
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import torch

from ..engine.primitives import Primitive, primitive
from ..engine.tensors import Tensor, wrap
from ._operands import raw
from .gathering import gather_scatter
from .reduce import _spread
from .shape import where
from .structure import flip

__all__ = ["prod", "cumsum", "cumprod", "cummax", "cummin"]

CummaxResult = namedtuple("CummaxResult", ["values", "indices"])
CumminResult = namedtuple("CumminResult", ["values", "indices"])


def _one_factor_out(x: Any, dim: int) -> Any:
    """x with a new dimension after ``dim``: entry (i, j) is x_j, or 1 where j == i."""
    n = x.shape[dim]
    eye = torch.eye(n, dtype=torch.bool, device=raw(x).device)
    eye = eye.reshape(eye.shape + (1,) * (x.ndim - 1 - dim % x.ndim))
    return where(eye, 1.0, x.unsqueeze(dim % x.ndim))


def _prod_vjp(g: Any, out: Any, x: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    if dim is None:
        flat = x.reshape(-1)
        return _prod_vjp(g.reshape(1), out.reshape(1), flat, 0, True).reshape(x.shape)
    if x.ndim == 0:
        return g
    g = _spread(g, x, dim)
    if not bool((raw(x) == 0).any()):
        return g * _spread(out, x, dim) / x
    others = _prod(_one_factor_out(x, dim), dim=dim % x.ndim + 1, keepdim=False)  # the product without x_i
    return g * others


_prod: Primitive = primitive(
    "prod",
    lambda x, dim=None, keepdim=False: torch.prod(x) if dim is None else torch.prod(x, dim, keepdim),
    [_prod_vjp],
    "prod(x, dim, keepdim): the product of the elements (along dim); exact gradients at zeros.",
    saves=(0, "output"),
)


def _reverse_cumsum(g: Any, dim: int) -> Any:
    return flip(_cumsum(flip(g, (dim,)), dim=dim), (dim,))


_cumsum: Primitive = primitive(
    "cumsum",
    lambda x, dim: torch.cumsum(x, dim),
    [lambda g, out, x, dim: _reverse_cumsum(g, dim)],
    "cumsum(x, dim): the running sums along dim.",
    saves=(),
)


def _cumprod_vjp(g: Any, out: Any, x: Any, dim: int) -> Any:
    if x.ndim == 0:
        return g
    if not bool((raw(x) == 0).any()):
        return _reverse_cumsum(g * out, dim) / x
    d = dim % x.ndim
    # d out_k / d x_i = the running product to k with x_i set to 1, for k >= i; 0 for k < i
    partial = _cumprod(_one_factor_out(x, d), dim=d + 1)
    n = x.shape[d]
    later = torch.ones(n, n, dtype=torch.bool, device=raw(x).device).triu()
    later = later.reshape(later.shape + (1,) * (x.ndim - 1 - d))
    return (where(later, partial, 0.0) * g.unsqueeze(d)).sum(d + 1)


_cumprod: Primitive = primitive(
    "cumprod",
    lambda x, dim: torch.cumprod(x, dim),
    [_cumprod_vjp],
    "cumprod(x, dim): the running products along dim; exact gradients at zeros.",
    saves=(0, "output"),
)


def _running_extreme(g: Any, out: Any, x: Any, dim: int, largest: bool = True) -> Any:
    found = torch.cummax(raw(x), dim) if largest else torch.cummin(raw(x), dim)
    return gather_scatter(g, dim=dim, index=found.indices, shape=tuple(x.shape))


_cummax: Primitive = primitive(
    "cummax",
    lambda x, dim: torch.cummax(x, dim).values,
    [_running_extreme],
    "cummax(x, dim): the running maxima along dim; the gradient goes to each returned index.",
    saves=(0,),
)
_cummin: Primitive = primitive(
    "cummin",
    lambda x, dim: torch.cummin(x, dim).values,
    [lambda g, out, x, dim: _running_extreme(g, out, x, dim, largest=False)],
    "cummin(x, dim): the running minima along dim; the gradient goes to each returned index.",
    saves=(0,),
)


def _as(input: Any, dtype: torch.dtype | None) -> Any:
    return input if dtype is None else input.to(dtype)


def prod(input: Any, dim: int | None = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Any:
    """The product of all elements, or along ``dim``, as torch.prod (exact gradients at zeros)."""
    x = _as(input, dtype)
    return _prod(x) if dim is None else _prod(x, dim=dim, keepdim=keepdim)


def cumsum(input: Any, dim: int, *, dtype: torch.dtype | None = None) -> Any:
    """The running sums along ``dim``, as torch.cumsum."""
    return _cumsum(_as(input, dtype), dim=dim)


def cumprod(input: Any, dim: int, *, dtype: torch.dtype | None = None) -> Any:
    """The running products along ``dim``, as torch.cumprod (exact gradients at zeros)."""
    return _cumprod(_as(input, dtype), dim=dim)


def _with_indices(result: type, values: Any, indices: torch.Tensor, input: Any) -> Any:
    return result(values, wrap(indices) if isinstance(input, Tensor) else indices)


def cummax(input: Any, dim: int) -> Any:
    """``(values, indices)`` of the running maxima along ``dim``, as torch.cummax (indices a constant)."""
    return _with_indices(CummaxResult, _cummax(input, dim=dim), torch.cummax(raw(input), dim).indices, input)


def cummin(input: Any, dim: int) -> Any:
    """``(values, indices)`` of the running minima along ``dim``, as torch.cummin (indices a constant)."""
    return _with_indices(CumminResult, _cummin(input, dim=dim), torch.cummin(raw(input), dim).indices, input)
