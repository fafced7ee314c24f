"""Elementwise primitives: unary math, activations and broadcasting binary arithmetic."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import torch

from ..engine.errors import call_site
from ..engine.primitives import Primitive, primitive
from ..engine.tensors import Tensor, wrap
from ._operands import align, raw
from .piecewise import floor_divide, trunc_divide
from .shape import _where

__all__ = [
    "neg", "exp", "log", "sqrt", "abs", "tanh", "relu", "sigmoid", "sin", "cos",
    "add", "sub", "mul", "div", "true_divide", "pow", "lt", "le", "gt", "ge", "eq", "ne",
]  # fmt: skip


# --- unary ------------------------------------------------------------------------------------
neg = primitive("neg", torch.neg, [lambda g, out, x: -g], "-x, elementwise.", saves=())
exp = primitive("exp", torch.exp, [lambda g, out, x: g * out], "e**x, elementwise.", saves=("output",))
log = primitive("log", torch.log, [lambda g, out, x: g / x], "Natural logarithm, elementwise.", saves=(0,))
sqrt = primitive("sqrt", torch.sqrt, [lambda g, out, x: g / (out * 2)], "Square root, elementwise.", saves=("output",))
abs = primitive("abs", torch.abs, [lambda g, out, x: g * raw(x).sign()], "|x|, elementwise.", saves=(0,))
sin: Primitive = primitive("sin", torch.sin, [lambda g, out, x: g * cos(x)], "Sine, elementwise.", saves=(0,))
cos: Primitive = primitive("cos", torch.cos, [lambda g, out, x: -g * sin(x)], "Cosine, elementwise.", saves=(0,))
# The gradients of tanh and sigmoid from their outputs are one fused torch kernel each (three ops
# written out); as primitives of their own they stay differentiable for higher order.
tanh_backward: Primitive = primitive(
    "tanh_backward",
    torch.ops.aten.tanh_backward.default,
    [lambda gg, o, g, out: tanh_backward(gg, out), lambda gg, o, g, out: gg * g * out * -2],
    "tanh_backward(g, out): g * (1 - out**2), the gradient of tanh from its output.",
    saves=(0, 1),
)
sigmoid_backward: Primitive = primitive(
    "sigmoid_backward",
    torch.ops.aten.sigmoid_backward.default,
    [lambda gg, o, g, out: sigmoid_backward(gg, out), lambda gg, o, g, out: gg * g * (1 - out * 2)],
    "sigmoid_backward(g, out): g * out * (1 - out), the gradient of sigmoid from its output.",
    saves=(0, 1),
)
# first order calls the aten kernels directly (the primitive's own call costs a microsecond per op)
_TANH_BACKWARD: Any = torch.ops.aten.tanh_backward.default._op
_SIGMOID_BACKWARD: Any = torch.ops.aten.sigmoid_backward.default._op
_THRESHOLD_BACKWARD: Any = torch.ops.aten.threshold_backward.default._op
tanh = primitive(
    "tanh",
    torch.tanh,
    [lambda g, out, x: tanh_backward(g, out)],
    "Hyperbolic tangent.",
    fast_vjp=[lambda g, out, x: _TANH_BACKWARD(g, out)],
    saves=("output",),
)
sigmoid = primitive(
    "sigmoid",
    torch.sigmoid,
    [lambda g, out, x: sigmoid_backward(g, out)],
    "1 / (1 + e**-x).",
    fast_vjp=[lambda g, out, x: _SIGMOID_BACKWARD(g, out)],
    saves=("output",),
)


# The reference rule multiplies by a 0/1 mask (a constant: differentiable again); the fast rule is
# torch's own kernel, one pass instead of a comparison and a masked fill (the same values: g where
# out > 0 or is NaN, else 0).
def _passes(out: Any) -> torch.Tensor:
    """relu's gradient mask as torch's threshold_backward has it: 0 where out <= 0, else 1 (NaN passes)."""
    data = raw(out)
    return (data > 0).logical_or_(data.isnan()).to(data.dtype)


relu = primitive(
    "relu",
    torch.relu,
    [lambda g, out, x: g * _passes(out)],
    "max(x, 0), elementwise.",
    fast_vjp=[lambda g, out, x: _THRESHOLD_BACKWARD(g, out, 0)],
    saves=("output",),
)


# --- binary (operands arrive with equal shapes, or as Python numbers) --------------------------
# the forwards are the operators themselves (C functions: no Python frame per op)
_add = primitive("add", operator.add, [lambda g, out, x, y: g, lambda g, out, x, y: g], saves=())
_sub = primitive("sub", operator.sub, [lambda g, out, x, y: g, lambda g, out, x, y: -g], saves=())
_mul = primitive("mul", operator.mul, [lambda g, out, x, y: g * y, lambda g, out, x, y: g * x], saves=(0, 1))
_div = primitive(
    "div", operator.truediv, [lambda g, out, x, y: g / y, lambda g, out, x, y: -g * out / y], saves=(1, "output")
)


def _pow_base(g: Any, out: Any, x: Any, y: Any) -> Any:
    if isinstance(y, (int, float)):
        if y == 2:
            return g * (x * 2)  # the square of losses: one op less
        if y == 0:
            return g * 0.0  # torch's zero, not 0 * x**-1 (NaN at x = 0)
        return g * (y * x ** (y - 1))
    # torch masks exponent == 0 to a zero gradient; the base is made 1 there so that no NaN or Inf
    # is computed at all (a masked NaN would come back in the second order)
    zero = raw(y) == 0
    return _where(zero, 0.0, g * (y * _where(zero, 1.0, x) ** (y - 1)))


def _pow_exponent(g: Any, out: Any, x: Any, y: Any) -> Any:
    if isinstance(x, (int, float)):
        if x == 0:  # torch: 0 for exponents >= 0, where the output is finite
            return _where(raw(y) >= 0, 0.0, g * out * -math.inf)
        return g * out * (math.log(x) if x > 0 else math.nan)  # a negative base: NaN, as torch
    zero = (raw(x) == 0) & (raw(y) >= 0)  # torch's mask for 0 ** y, y >= 0: a zero gradient
    return _where(zero, 0.0, g * out * log(_where(zero, 1.0, x)))


_pow = primitive("pow", lambda x, y: x**y, [_pow_base, _pow_exponent], saves=(0, 1, "output"))


def _same(x: Any, y: Any) -> bool:
    """Whether ``x`` and ``y`` need nothing from `align`: two tg.Tensors of one dtype and shape, or a
    tg.Tensor and a Python float or int (not bool: torch promotes those differently)."""
    if isinstance(x, Tensor):
        if isinstance(y, Tensor):
            a, b = x.data, y.data
            return a.dtype is b.dtype and a.shape == b.shape
        return y.__class__ is float or y.__class__ is int
    return False


def add(x: Any, y: Any) -> Any:
    """x + y with torch broadcasting; Python numbers mix with tensors."""
    return _add(x, y) if _same(x, y) else _add(*align("add", x, y))


def sub(x: Any, y: Any) -> Any:
    """x - y with torch broadcasting."""
    return _sub(x, y) if _same(x, y) else _sub(*align("sub", x, y))


def mul(x: Any, y: Any) -> Any:
    """x * y with torch broadcasting."""
    return _mul(x, y) if _same(x, y) else _mul(*align("mul", x, y))


def div(x: Any, y: Any, *, rounding_mode: str | None = None) -> Any:
    """x / y with torch broadcasting: true division, or rounded ("trunc", "floor"; zero gradient)."""
    if rounding_mode is None:
        return _div(x, y) if _same(x, y) else _div(*align("div", x, y))
    if rounding_mode not in _ROUNDED:
        raise ValueError(
            f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r} (called at {call_site()})"
        )
    return _ROUNDED[rounding_mode](x, y)


_ROUNDED = {"trunc": trunc_divide, "floor": floor_divide}


def true_divide(input: Any, other: Any) -> Any:
    """``input / other``, as torch.true_divide."""
    return div(input, other)


def pow(x: Any, y: Any) -> Any:
    """x ** y with torch broadcasting; the gradient for y needs x > 0."""
    return _pow(*align("pow", x, y))


# --- no gradient: comparisons return bool constants -----------------------------------------
def _constant(fn: Callable[..., torch.Tensor]) -> Callable[..., Any]:
    def op(x: Any, y: Any = None) -> Any:
        result = fn(raw(x)) if y is None else fn(raw(x), raw(y))
        return wrap(result) if isinstance(x, Tensor) or isinstance(y, Tensor) else result

    op.__name__ = fn.__name__
    op.__doc__ = f"torch.{fn.__name__} on the data: a constant that no tape records."
    return op


lt, le, gt, ge = _constant(torch.lt), _constant(torch.le), _constant(torch.gt), _constant(torch.ge)
eq, ne = _constant(torch.eq), _constant(torch.ne)
