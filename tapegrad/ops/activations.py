"""Activations beyond relu / tanh / sigmoid: gelu (both approximations), leaky_relu, softplus, dropout."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..engine.errors import call_site
from ..engine.primitives import Primitive, primitive
from ..engine.tensors import Tensor
from ._operands import raw
from .elementwise import exp, sigmoid, tanh
from .shape import _where
from .special import erf

__all__ = ["gelu", "leaky_relu", "softplus", "dropout"]

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_KAPPA = 0.044715


def _gelu_vjp(g: Any, out: Any, x: Any, approximate: str = "none") -> Any:
    if approximate == "tanh":
        t = tanh((x + x * x * x * _KAPPA) * _SQRT_2_OVER_PI)
        slope = (1 + t) * 0.5 + x * (1 - t * t) * ((1 + x * x * (3 * _KAPPA)) * (0.5 * _SQRT_2_OVER_PI))
        return g * slope
    cdf = (erf(x * _SQRT_HALF) + 1) * 0.5
    return g * (cdf + x * exp(x * x * -0.5) * _INV_SQRT_2PI)


_GELU_BACKWARD: Any = torch.ops.aten.gelu_backward.default._op
_GELU: Any = torch._C._nn.gelu  # aten's binding, not an OpOverload (see ops/normalization.py)

_gelu = primitive(
    "gelu",
    lambda x, approximate="none": _GELU(x, approximate=approximate),
    [_gelu_vjp],
    "gelu(x, approximate): x * Phi(x), or its tanh approximation.",
    fast_vjp=[lambda g, out, x, approximate="none": _GELU_BACKWARD(g, x, approximate=approximate)],
    saves=(0,),
)


def gelu(input: Any, approximate: str = "none") -> Any:
    """x * Phi(x) (Phi the standard normal CDF), or with ``approximate="tanh"`` torch's tanh formula."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r} (called at {call_site()})")
    return _gelu(input, approximate=approximate)


def _slopes(x: torch.Tensor, negative_slope: float) -> torch.Tensor:
    """1 where x > 0, else negative_slope, in x's dtype (a constant; float32 scalars would round it)."""
    return torch.full_like(x, negative_slope).masked_fill_(x > 0, 1.0)


_leaky_relu = primitive(
    "leaky_relu",
    lambda x, negative_slope=0.01: torch.where(x > 0, x, x * negative_slope),
    [lambda g, out, x, negative_slope=0.01: g * _slopes(raw(x), negative_slope)],
    "leaky_relu(x, negative_slope): x where x > 0, else negative_slope * x.",
    saves=(0,),
)


def leaky_relu(input: Any, negative_slope: float = 0.01) -> Any:
    """x where x > 0, else ``negative_slope * x``, as torch's leaky_relu."""
    return _leaky_relu(input, negative_slope=negative_slope)


def _softplus_vjp(g: Any, out: Any, x: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    linear = raw(x) * beta > threshold  # torch's switch to the identity, where exp would overflow
    return g * _where(linear, 1.0, sigmoid(x * beta))


_softplus = primitive(
    "softplus",
    lambda x, beta=1.0, threshold=20.0: torch.where(x * beta > threshold, x, torch.log1p(torch.exp(x * beta)) / beta),
    [_softplus_vjp],
    "softplus(x, beta, threshold): log(1 + exp(beta * x)) / beta, x itself where beta * x > threshold.",
    saves=(0,),
)


def softplus(input: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    """log(1 + exp(beta * x)) / beta, reverting to x where beta * x > threshold, as torch's softplus."""
    return _softplus(input, beta=beta, threshold=threshold)


_dropout = primitive(
    "dropout",
    lambda x, mask: x * mask,
    [lambda g, out, x, mask: g * mask],
    "dropout(x, mask): x times a constant mask of 0 and 1/(1-p) (drawn by the dropout front end).",
    saves=(),
)


# The draw is an op of its own, recorded but not registered (no VJP, no user calls it): a traced step
# replays it, so each call draws a fresh mask from the generator in the order the eager step does.
_draw_mask = Primitive(
    "dropout_mask",
    lambda x, p, generator=None: torch.bernoulli(torch.full_like(x, 1 - p), generator=generator).div_(1 - p),
    None,
    "dropout_mask(x, p, generator): 0 with probability p, else 1/(1-p), in x's shape (a random draw).",
)


def dropout(
    input: Any, p: float = 0.5, training: bool = True, inplace: bool = False, generator: torch.Generator | None = None
) -> Any:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p), as torch's dropout.

    The mask is drawn with ``torch.bernoulli`` from ``generator`` (torch's default one if None);
    with ``training=False`` or ``p=0`` the input comes back unchanged. ``inplace`` is accepted for
    torch's signature but ignored (a new tensor is returned).
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r} (called at {call_site()})")
    if not training or p == 0:
        return input
    data = raw(input)
    if p == 1:
        mask = torch.zeros_like(data)
    else:
        mask = raw(_draw_mask(input, p=p, generator=generator))
    if not isinstance(input, Tensor):
        return data * mask
    return _dropout(input, mask=mask)
