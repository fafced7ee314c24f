"""Fused normalisers: layer_norm, softmax and log_softmax, each one record on torch's own kernels.

Forward and first-order VJP call torch's aten kernels (``native_layer_norm`` and its backward,
``_softmax_backward_data``, ``_log_softmax_backward_data``); the reference VJPs, written with
tapegrad ops, serve higher order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import primitive
from ..engine.tensors import Tensor
from ._broadcast import cast
from ._operands import raw

__all__ = ["layer_norm", "softmax", "log_softmax"]

_A = torch.ops.aten
# aten's own bindings where torch has one (torch.native_layer_norm): a call through torch.ops (an OpOverload)
# parses its arguments against the schema in Python's stead, about 13k instructions more per call
_LAYER_NORM: Any = torch.native_layer_norm
_LAYER_NORM_BACKWARD: Any = _A.native_layer_norm_backward.default._op
_SOFTMAX_BACKWARD: Any = torch._softmax_backward_data
_LOG_SOFTMAX_BACKWARD: Any = torch._log_softmax_backward_data


def _ln_forward(
    x: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None, normalized_shape: list[int], eps: float
) -> torch.Tensor:
    return _LAYER_NORM(x, normalized_shape, w, b, eps)[0]


def _ln_residuals(
    x: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None, normalized_shape: list[int], eps: float
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    out, mean, rstd = _LAYER_NORM(x, normalized_shape, w, b, eps)
    return out, (mean, rstd)


def _ln_fast_vjp(
    g: torch.Tensor,
    out: torch.Tensor,
    x: torch.Tensor,
    w: torch.Tensor | None,
    b: torch.Tensor | None,
    *saved: torch.Tensor,
    normalized_shape: list[int],
    eps: float,
) -> tuple[Any, ...]:
    # mean and 1/std as the forward kept them, or again from x (one kernel); torch's backward kernel for all three
    mean, rstd = saved if saved else _LAYER_NORM(x, normalized_shape, None, None, eps)[1:]
    mask = [True, w is not None, b is not None]
    return _LAYER_NORM_BACKWARD(g, x, normalized_shape, mean, rstd, w, b, mask)


def _ln_vjp(g: Any, out: Any, x: Any, w: Any, b: Any, normalized_shape: list[int], eps: float) -> tuple[Any, ...]:
    dims = tuple(range(-len(normalized_shape), 0))
    lead = tuple(range(x.ndim - len(normalized_shape)))
    centered = x - x.mean(dims, keepdim=True)
    rstd = ((centered * centered).mean(dims, keepdim=True) + eps) ** -0.5
    xhat = centered * rstd
    gy = g if w is None else g * w
    gx = (gy - gy.mean(dims, keepdim=True) - xhat * (gy * xhat).mean(dims, keepdim=True)) * rstd
    gw = None if w is None else (g * xhat).sum(lead) if lead else g * xhat
    gb = None if b is None else g.sum(lead) if lead else g
    return gx, gw, gb


_layer_norm = primitive(
    "layer_norm",
    _ln_forward,
    _ln_vjp,
    "layer_norm(x, weight, bias, normalized_shape, eps): (x - mean) / sqrt(var + eps) over the last "
    "dimensions, times weight plus bias (either may be None); torch's native_layer_norm.",
    fast_vjp=_ln_fast_vjp,
    saves=(0, 1, 2),  # not the output; the bias is a parameter (kept anyway), passed to the kernel
    residuals=_ln_residuals,  # mean and 1/std, as torch keeps them
)


def _shape_of(normalized_shape: int | Sequence[int]) -> list[int]:
    return [normalized_shape] if isinstance(normalized_shape, int) else [int(s) for s in normalized_shape]


def layer_norm(
    input: Any,
    normalized_shape: int | Sequence[int],
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Any:
    """Normalise over the last ``len(normalized_shape)`` dimensions, then scale by ``weight`` and shift
    by ``bias`` (each of ``normalized_shape``, or None), as torch's layer_norm: one record."""
    shape = _shape_of(normalized_shape)
    x = raw(input)
    n = len(shape)
    if x.dim() < n or list(x.shape[x.dim() - n :]) != shape:
        raise ShapeError(
            f"layer_norm: input {tuple(x.shape)} does not end in normalized_shape {tuple(shape)} "
            f"(called at {call_site()})"
        )
    return affine_layer_norm(input, shape, weight, bias, eps)


def affine_layer_norm(input: Any, shape: list[int], weight: Any, bias: Any, eps: float) -> Any:
    """`layer_norm` of an input already checked to end in ``shape`` (a list): ``weight`` and ``bias``
    are checked here (nn.LayerNorm checks its input with the layer's name, then calls this)."""
    expected = tuple(shape)
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            size = p.data.shape if isinstance(p, Tensor) else raw(p).shape
            if size != expected:
                raise ShapeError(
                    f"layer_norm: {name} {tuple(size)} must have normalized_shape {tuple(shape)} "
                    f"(called at {call_site()})"
                )
    return _layer_norm(input, weight, bias, normalized_shape=shape, eps=eps)


_softmax = primitive(
    "softmax",
    lambda x, dim: torch.softmax(x, dim),
    [lambda g, out, x, dim: out * (g - (g * out).sum(dim, keepdim=True))],
    "softmax(x, dim): exp(x) / sum(exp(x)) along dim, computed stably.",
    fast_vjp=[lambda g, out, x, dim: _SOFTMAX_BACKWARD(g, out, dim, out.dtype)],
    saves=["output"],
)
_log_softmax = primitive(
    "log_softmax",
    lambda x, dim: torch.log_softmax(x, dim),
    [lambda g, out, x, dim: g - out.exp() * g.sum(dim, keepdim=True)],
    "log_softmax(x, dim): x - logsumexp(x, dim), computed stably.",
    fast_vjp=[lambda g, out, x, dim: _LOG_SOFTMAX_BACKWARD(g, out, dim, out.dtype)],
    saves=["output"],
)


def _in_dtype(x: Any, dtype: torch.dtype | None) -> Any:
    """``x`` cast to ``dtype`` first (a recorded cast), as torch's ``dtype=`` argument does."""
    if dtype is None or raw(x).dtype is dtype:
        return x
    return cast(x, dtype=dtype)


def softmax(input: Any, dim: int, dtype: torch.dtype | None = None) -> Any:
    """exp(x) / sum(exp(x)) along ``dim``, computed stably, as torch.softmax (``dtype``: cast first)."""
    return _softmax(_in_dtype(input, dtype), dim=dim)


def log_softmax(input: Any, dim: int, dtype: torch.dtype | None = None) -> Any:
    """x - logsumexp(x, dim), computed stably, as torch.log_softmax (``dtype``: cast first)."""
    return _log_softmax(_in_dtype(input, dtype), dim=dim)
