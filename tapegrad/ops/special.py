"""Special functions, elementwise: log1p, expm1 and erf."""

from __future__ import annotations

import math

import torch

from ..engine.primitives import primitive
from .elementwise import exp

__all__ = ["log1p", "expm1", "erf"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

log1p = primitive("log1p", torch.log1p, [lambda g, out, x: g / (x + 1)], "log(1 + x), accurate near 0.", saves=(0,))
expm1 = primitive(
    "expm1", torch.expm1, [lambda g, out, x: g * (out + 1)], "exp(x) - 1, accurate near 0.", saves=("output",)
)
erf = primitive(
    "erf",
    torch.erf,
    [lambda g, out, x: g * (exp(-(x * x)) * _TWO_OVER_SQRT_PI)],
    "The error function, elementwise.",
    saves=(0,),
)
