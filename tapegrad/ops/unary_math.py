"""More elementwise math: tan, the inverse trigonometric and the hyperbolic functions, rsqrt,
log2 and log10, each a primitive whose VJP is made of tapegrad ops (differentiable again)."""

from __future__ import annotations

import math

import torch

from ..engine.primitives import Primitive, primitive
from .elementwise import sqrt

__all__ = [
    "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "rsqrt", "log2", "log10",
]  # fmt: skip

tan = primitive("tan", torch.tan, [lambda g, out, x: g * (out * out + 1)], "Tangent, elementwise.", saves=("output",))
asin = primitive(
    "asin", torch.asin, [lambda g, out, x: g / sqrt(1 - x * x)], "Arcsine, elementwise (|x| < 1).", saves=(0,)
)
acos = primitive(
    "acos", torch.acos, [lambda g, out, x: -g / sqrt(1 - x * x)], "Arccosine, elementwise (|x| < 1).", saves=(0,)
)
atan = primitive("atan", torch.atan, [lambda g, out, x: g / (x * x + 1)], "Arctangent, elementwise.", saves=(0,))
sinh: Primitive = primitive(
    "sinh", torch.sinh, [lambda g, out, x: g * cosh(x)], "Hyperbolic sine, elementwise.", saves=(0,)
)
cosh: Primitive = primitive(
    "cosh", torch.cosh, [lambda g, out, x: g * sinh(x)], "Hyperbolic cosine, elementwise.", saves=(0,)
)
asinh = primitive("asinh", torch.asinh, [lambda g, out, x: g / sqrt(x * x + 1)], "Inverse hyperbolic sine.", saves=(0,))
acosh = primitive(
    "acosh", torch.acosh, [lambda g, out, x: g / sqrt(x * x - 1)], "Inverse hyperbolic cosine (x > 1).", saves=(0,)
)
atanh = primitive(
    "atanh", torch.atanh, [lambda g, out, x: g / (1 - x * x)], "Inverse hyperbolic tangent (|x| < 1).", saves=(0,)
)
# d/dx x**-1/2 = -x**-3/2 / 2 = -out**3 / 2: from the output, one multiply chain
rsqrt = primitive(
    "rsqrt",
    torch.rsqrt,
    [lambda g, out, x: g * (out * out * out) * -0.5],
    "1 / sqrt(x), elementwise.",
    saves=("output",),
)
log2 = primitive(
    "log2", torch.log2, [lambda g, out, x: g / (x * math.log(2.0))], "Base-2 logarithm, elementwise.", saves=(0,)
)
log10 = primitive(
    "log10", torch.log10, [lambda g, out, x: g / (x * math.log(10.0))], "Base-10 logarithm, elementwise.", saves=(0,)
)
