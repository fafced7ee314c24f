"""Piecewise-constant ops: sign, floor, ceil, trunc, round and the rounded divisions.

Each is recorded with a zero gradient, as torch gives one: ``tape.gradient(x.sign().sum(), [x])``
is zeros, not an unrecorded target. Their outputs on integer tensors need no gradient at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..engine.primitives import Primitive, primitive
from ._operands import tensor_operands
from .shape import clamp

__all__ = ["sign", "floor", "ceil", "trunc", "round", "frac", "floor_divide", "trunc_divide", "clip"]


def _zero(g: Any, out: Any, *args: Any, **params: Any) -> Any:
    return g * 0.0


def _flat(name: str, forward: Callable[..., torch.Tensor], doc: str, inputs: int = 1) -> Primitive:
    """A primitive whose derivative is 0 wherever it exists (one zero rule per input)."""
    return primitive(name, forward, [_zero] * inputs, f"{doc} Recorded with a zero gradient, as torch.", saves=())


sign = _flat("sign", torch.sign, "The sign of x (-1, 0 or 1), elementwise.")
floor = _flat("floor", torch.floor, "The largest integer <= x, elementwise.")
ceil = _flat("ceil", torch.ceil, "The smallest integer >= x, elementwise.")
trunc = _flat("trunc", torch.trunc, "x rounded towards zero, elementwise.")
_round = _flat("round", lambda x, decimals=0: torch.round(x, decimals=decimals), "x rounded half to even.")
_floor_divide = _flat(
    "floor_divide", lambda x, y: torch.div(x, y, rounding_mode="floor"), "x / y rounded down.", inputs=2
)
_trunc_divide = _flat(
    "trunc_divide", lambda x, y: torch.div(x, y, rounding_mode="trunc"), "x / y rounded towards zero.", inputs=2
)


def round(input: Any, decimals: int = 0) -> Any:
    """``input`` rounded half to even to ``decimals`` decimal places, as torch.round (zero gradient)."""
    return _round(input) if decimals == 0 else _round(input, decimals=decimals)


def frac(input: Any) -> Any:
    """The fractional part ``x - trunc(x)``, as torch.frac (gradient 1)."""
    return input - trunc(input)


def floor_divide(input: Any, other: Any) -> Any:
    """``input / other`` rounded down (Python's ``//``), broadcast and promoted as torch.floor_divide."""
    return _floor_divide(*tensor_operands("floor_divide", input, other))


def trunc_divide(input: Any, other: Any) -> Any:
    """``input / other`` rounded towards zero: torch.div with ``rounding_mode="trunc"``."""
    return _trunc_divide(*tensor_operands("trunc_divide", input, other))


def clip(input: Any, min: float | None = None, max: float | None = None) -> Any:
    """``input`` limited to [min, max]: torch.clip, the alias of `clamp`."""
    return clamp(input, min, max)
