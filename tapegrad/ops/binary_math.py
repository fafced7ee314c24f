"""Broadcasting binary math: atan2, copysign, fmod, remainder and lerp.

The front ends broadcast and promote as torch does (`align`); a Python number on the left becomes
a constant 0-d tensor of torch's result dtype, since these torch functions take a tensor first.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.primitives import Primitive, primitive
from ..engine.tensors import Tensor
from ._operands import raw, tensor_operands

__all__ = ["atan2", "arctan2", "copysign", "fmod", "remainder", "lerp"]


def _squares(x: Any, y: Any) -> Any:
    return x * x + y * y


_atan2 = primitive(
    "atan2",
    torch.atan2,
    [lambda g, out, y, x: g * x / _squares(x, y), lambda g, out, y, x: -g * y / _squares(x, y)],
    "atan2(y, x): the angle of the point (x, y), elementwise.",
    saves=(0, 1),
)


def _copysign_ratio(x: Any, out: Any) -> torch.Tensor:
    """d out / d x: +-1 (the sign flip), 0 where x is 0 (torch's rule); a constant."""
    a = raw(x)
    return torch.where(a == 0, 0.0, raw(out) / a).to(raw(out).dtype)


_copysign = primitive(
    "copysign",
    torch.copysign,
    [lambda g, out, x, y: g * _copysign_ratio(x, out), lambda g, out, x, y: g * 0.0],
    "copysign(x, y): |x| with the sign of y, elementwise; no gradient for y.",
    saves=(0, "output"),
)


def _remainder_of(name: str, rounding: str, doc: str) -> Primitive:
    """fmod and remainder: ``x - q * y`` with ``q = x / y`` rounded (``rounding``), piecewise constant."""

    def by_y(g: Any, out: Any, x: Any, y: Any) -> Any:
        """-g * q, the quotient rounded as the forward rounds it (a constant)."""
        return -g * torch.div(raw(x), raw(y), rounding_mode=rounding)

    return primitive(name, getattr(torch, name), [lambda g, out, x, y: g, by_y], doc, saves=(0, 1))


_fmod = _remainder_of("fmod", "trunc", "fmod(x, y): the remainder of x / y with x's sign (C's fmod).")
_remainder = _remainder_of("remainder", "floor", "remainder(x, y): the remainder of x / y with y's sign (Python's %).")
_lerp = primitive(
    "lerp",
    torch.lerp,
    [
        lambda g, out, a, b, w: g * (1 - w),
        lambda g, out, a, b, w: g * w,
        lambda g, out, a, b, w: g * (b - a),
    ],
    "lerp(start, end, weight): start + weight * (end - start), elementwise.",
    saves=(0, 1, 2),
)


def atan2(input: Any, other: Any) -> Any:
    """The angle of the point (other, input) in radians, as torch.atan2 (broadcasting)."""
    return _atan2(*tensor_operands("atan2", input, other))


arctan2 = atan2


def copysign(input: Any, other: Any) -> Any:
    """``|input|`` with the sign of ``other``, as torch.copysign; ``other`` gets no gradient."""
    return _copysign(*tensor_operands("copysign", input, other))


def fmod(input: Any, other: Any) -> Any:
    """The remainder of ``input / other`` with the sign of ``input``, as torch.fmod."""
    return _fmod(*tensor_operands("fmod", input, other))


def remainder(input: Any, other: Any) -> Any:
    """The remainder of ``input / other`` with the sign of ``other`` (Python's ``%``), as torch.remainder."""
    return _remainder(*tensor_operands("remainder", input, other))


def lerp(input: Any, end: Any, weight: Any) -> Any:
    """``input + weight * (end - input)``, as torch.lerp; ``weight`` a number or a tensor."""
    if isinstance(weight, (Tensor, torch.Tensor)):
        return _lerp(*tensor_operands("lerp", input, end, weight))
    start, stop = tensor_operands("lerp", input, end)
    return _lerp(start, stop, weight)
