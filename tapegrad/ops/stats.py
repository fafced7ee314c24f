"""Spread and size: var and std (dim, keepdim, correction) and the vector norms (p = 1, 2, inf)."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..engine.errors import call_site
from ..engine.primitives import primitive
from ._operands import raw
from .reduce import _count, _dims, _kept, _spread
from .shape import _where

__all__ = ["var", "std", "norm"]


def _centered(x: Any, dim: Any) -> Any:
    return x - (x.mean() if dim is None else x.mean(dim, keepdim=True))


def _var_vjp(g: Any, out: Any, x: Any, dim: Any = None, correction: float = 1, keepdim: bool = False) -> Any:
    scale = 2.0 / (_count(x.shape, dim) - correction)
    return _spread(g * scale, x, dim) * _centered(x, dim)


def _std_vjp(g: Any, out: Any, x: Any, dim: Any = None, correction: float = 1, keepdim: bool = False) -> Any:
    zero = raw(out) == 0  # torch: a zero gradient where the spread is 0, not 0/0
    return _var_vjp(_where(zero, 0.0, g / (_where(zero, 1.0, out) * 2)), out, x, dim, correction, keepdim)


_var = primitive(
    "var",
    lambda x, dim=None, correction=1, keepdim=False: torch.var(x, dim, correction=correction, keepdim=keepdim),
    [_var_vjp],
    "var(x, dim, correction, keepdim): the variance, sum((x - mean)**2) / (N - correction).",
    saves=(0,),
)
_std = primitive(
    "std",
    lambda x, dim=None, correction=1, keepdim=False: torch.std(x, dim, correction=correction, keepdim=keepdim),
    [_std_vjp],
    "std(x, dim, correction, keepdim): the square root of var.",
    saves=(0, "output"),
)


def _correction(unbiased: bool | None, correction: float | None) -> float:
    if unbiased is not None and correction is not None:
        raise ValueError("var/std: give either unbiased or correction, not both")
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def _dim(dim: Any) -> Any:
    if isinstance(dim, bool):  # torch's var(x, unbiased) overload: a bool in the dim position
        raise TypeError("var/std: pass unbiased by keyword (var(x, unbiased=False))")
    return None if dim is None or (isinstance(dim, (tuple, list)) and not dim) else dim


def var(
    input: Any, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *, correction: float | None = None
) -> Any:
    """The variance over ``dim`` (all elements by default) with Bessel's ``correction`` (1), as torch.var."""
    return _var(input, dim=_dim(dim), correction=_correction(unbiased, correction), keepdim=keepdim)


def std(
    input: Any, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *, correction: float | None = None
) -> Any:
    """The standard deviation over ``dim`` with ``correction`` (1), as torch.std."""
    return _std(input, dim=_dim(dim), correction=_correction(unbiased, correction), keepdim=keepdim)


def _norm_vjp(g: Any, out: Any, x: Any, p: float = 2, dim: Any = None, keepdim: bool = False) -> Any:
    if p == 1:
        return _spread(g, x, dim) * raw(x).sign()
    if p == 2:
        zero = raw(out) == 0  # torch: a zero gradient at the zero vector
        return _spread(_where(zero, 0.0, g / _where(zero, 1.0, out)), x, dim) * x
    # p = inf: the largest magnitudes share the gradient, as amax's ties do
    a = raw(x).abs()
    ties = (a == raw(out).reshape(_kept(x.shape, dim))).to(a.dtype)
    share = ties * raw(x).sign() / ties.sum(_dims(x.ndim, dim) if x.ndim else (), keepdim=True)
    return _spread(g, x, dim) * share


_norm = primitive(
    "norm",
    lambda x, p=2, dim=None, keepdim=False: torch.linalg.vector_norm(x, p, dim, keepdim),
    [_norm_vjp],
    "norm(x, p, dim, keepdim): the vector p-norm (p = 1, 2 or inf) over dim.",
    saves=(0, "output"),
)


def norm(input: Any, p: Any = "fro", dim: Any = None, keepdim: bool = False) -> Any:
    """The vector ``p``-norm over ``dim`` (all elements by default), as torch.norm; p is 1, 2, inf or 'fro' (2)."""
    order = 2 if p in ("fro", None) else p
    if order not in (1, 2, math.inf):
        raise ValueError(f"norm: p must be 1, 2, inf or 'fro', got {p!r} (called at {call_site()})")
    return _norm(input, p=order, dim=_dim(dim), keepdim=keepdim)
