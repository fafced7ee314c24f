"""Elementwise maximum / minimum (ties split the gradient in half, as torch) and argmax / argmin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..engine.primitives import Primitive, primitive
from ..engine.tensors import Tensor, wrap
from ._operands import align, raw

__all__ = ["maximum", "minimum", "argmax", "argmin"]


def _share(x: Any, y: Any, larger: bool) -> torch.Tensor:
    """x's share of the gradient: 1/2 at ties, 0 where y wins, else 1 (a constant): a NaN on either
    side compares false both ways and passes the whole gradient to both, as in torch."""
    a, b = raw(x), raw(y)
    loses = a < b if larger else a > b
    return 1 - loses.to(a.dtype) - (a == b).to(a.dtype) * 0.5


def _extreme(name: str, larger: bool, doc: str) -> Primitive:
    """maximum (``larger``) or minimum: each input's gradient is g times its share (`_share`)."""
    rules = [lambda g, out, x, y: g * _share(x, y, larger), lambda g, out, x, y: g * _share(y, x, larger)]
    return primitive(name, getattr(torch, name), rules, doc, saves=(0, 1))


_maximum = _extreme(
    "maximum", True, "maximum(x, y): the larger of two equal-shaped tensors elementwise; ties split the gradient."
)
_minimum = _extreme(
    "minimum", False, "minimum(x, y): the smaller of two equal-shaped tensors elementwise; ties split the gradient."
)


def _tensors(x: Any, y: Any, op: str) -> list[Any]:
    # torch.maximum takes tensors; a Python number becomes a constant 0-d tensor of the other's dtype
    if not _is_tensor(x):
        x = torch.tensor(x, dtype=raw(y).dtype, device=raw(y).device)
    if not _is_tensor(y):
        y = torch.tensor(y, dtype=raw(x).dtype, device=raw(x).device)
    return align(op, x, y)


def _is_tensor(a: Any) -> bool:
    return isinstance(a, (Tensor, torch.Tensor))


def maximum(input: Any, other: Any) -> Any:
    """The elementwise maximum with torch broadcasting and type promotion, as torch.maximum."""
    return _maximum(*_tensors(input, other, "maximum"))


def minimum(input: Any, other: Any) -> Any:
    """The elementwise minimum with torch broadcasting and type promotion, as torch.minimum."""
    return _minimum(*_tensors(input, other, "minimum"))


def _index_op(fn: Callable[..., torch.Tensor]) -> Callable[..., Any]:
    def op(input: Any, dim: int | None = None, keepdim: bool = False) -> Any:
        result = fn(raw(input), dim, keepdim)
        return wrap(result) if isinstance(input, Tensor) else result

    op.__name__ = fn.__name__
    kind = "largest" if fn is torch.argmax else "smallest"
    op.__doc__ = f"Indices of the {kind} values as torch.{fn.__name__}: an integer constant, not recorded."
    return op


argmax = _index_op(torch.argmax)
argmin = _index_op(torch.argmin)
