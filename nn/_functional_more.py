"""More of ``nn.functional``: normalisations beyond layer_norm, the rarer activations, distances and
pixel shuffles, as compositions of tapegrad ops with torch's signatures."""

from __future__ import annotations

from typing import Any

import torch

from tapegrad import ops
from tapegrad.engine.tensors import wrap
from tapegrad.ops import clamp, expm1, where

from ._where import called_at
from .layers import as_tensor

__all__ = [
    "group_norm", "rms_norm", "selu", "celu", "hardswish", "hardsigmoid", "softsign", "tanhshrink", "threshold",
    "cosine_similarity", "pairwise_distance", "pixel_shuffle", "pixel_unshuffle", "hardshrink", "softshrink",
    "prelu", "instance_norm", "dropout1d", "dropout2d", "dropout3d",
]  # fmt: skip

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def group_norm(input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
    """(x - mean) / sqrt(var + eps) over each group of channels of (N, C, ...), then per-channel affine."""
    x = as_tensor(input, "group_norm")
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ValueError(f"group_norm: {num_groups} groups do not divide the channels of {tuple(x.shape)}{called_at()}")
    groups = x.reshape(x.shape[0], num_groups, -1)
    mean = groups.mean(-1, keepdim=True)
    var = groups.var(-1, keepdim=True, correction=0)
    out = ((groups - mean) / (var + eps).sqrt()).reshape(x.shape)
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    if weight is not None:
        out = out * as_tensor(weight, "group_norm", "weight").reshape(per_channel)
    return out if bias is None else out + as_tensor(bias, "group_norm", "bias").reshape(per_channel)


def rms_norm(input: Any, normalized_shape: Any, weight: Any = None, eps: float | None = None) -> Any:
    """x / sqrt(mean(x**2) + eps) over the last ``len(normalized_shape)`` dimensions, times ``weight``."""
    x = as_tensor(input, "rms_norm")
    n = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    out = x / ((x * x).mean(tuple(range(-n, 0)), keepdim=True) + eps).sqrt()
    return out if weight is None else out * weight


def selu(input: Any, inplace: bool = False) -> Any:
    """scale * (x where x > 0, else alpha * (exp(x) - 1)), with torch's constants."""
    x = as_tensor(input, "selu")
    return where(x.data > 0, x, expm1(x) * _SELU_ALPHA) * _SELU_SCALE


def celu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Any:
    """x where x > 0, else alpha * (exp(x / alpha) - 1)."""
    x = as_tensor(input, "celu")
    return where(x.data > 0, x, expm1(x / alpha) * alpha)


def hardsigmoid(input: Any, inplace: bool = False) -> Any:
    """clamp(x / 6 + 1/2, 0, 1)."""
    return clamp(input / 6.0 + 0.5, 0.0, 1.0)


def hardswish(input: Any, inplace: bool = False) -> Any:
    """x * hardsigmoid(x)."""
    return input * hardsigmoid(input)


def softsign(input: Any) -> Any:
    """x / (1 + abs(x))."""
    return input / (ops.abs(input) + 1.0)


def tanhshrink(input: Any) -> Any:
    """x - tanh(x)."""
    return input - ops.tanh(input)


def threshold(input: Any, threshold: float, value: float, inplace: bool = False) -> Any:
    """x where x > threshold, else ``value``."""
    x = as_tensor(input, "threshold")
    return x.masked_fill(~(x.data > threshold), value)


def cosine_similarity(x1: Any, x2: Any, dim: int = 1, eps: float = 1e-8) -> Any:
    """<x1, x2> / max(norm(x1) * norm(x2), eps) along ``dim`` (broadcasting), as torch's."""
    a, b = as_tensor(x1, "cosine_similarity"), as_tensor(x2, "cosine_similarity", "x2")
    norms = ops.norm(a, 2, dim) * ops.norm(b, 2, dim)
    return (a * b).sum(dim) / clamp(norms, min=eps)


def pairwise_distance(x1: Any, x2: Any, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Any:
    """The p-norm of x1 - x2 + eps along the last dimension."""
    return ops.norm(as_tensor(x1, "pairwise_distance") - x2 + eps, p, -1, keepdim)


def pixel_shuffle(input: Any, upscale_factor: int) -> Any:
    """(..., C * r * r, H, W) -> (..., C, H * r, W * r)."""
    x, r = as_tensor(input, "pixel_shuffle"), upscale_factor
    *lead, c, h, w = x.shape
    out = x.reshape(*lead, c // (r * r), r, r, h, w)
    n = len(lead)
    out = out.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return out.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Any, downscale_factor: int) -> Any:
    """(..., C, H * r, W * r) -> (..., C * r * r, H, W)."""
    x, r = as_tensor(input, "pixel_unshuffle"), downscale_factor
    *lead, c, h, w = x.shape
    out = x.reshape(*lead, c, h // r, r, w // r, r)
    n = len(lead)
    out = out.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return out.reshape(*lead, c * r * r, h // r, w // r)


def hardshrink(input: Any, lambd: float = 0.5) -> Any:
    """x where abs(x) > lambd, else 0."""
    x = as_tensor(input, "hardshrink")
    return x.masked_fill(~(x.data.abs() > lambd), 0.0)


def softshrink(input: Any, lambd: float = 0.5) -> Any:
    """x - lambd above lambd, x + lambd below -lambd, else 0."""
    x = as_tensor(input, "softshrink")
    return where(x.data > lambd, x - lambd, where(x.data < -lambd, x + lambd, x * 0.0))


def prelu(input: Any, weight: Any) -> Any:
    """x where x > 0, else weight * x (one weight, or one per channel of dimension 1)."""
    x, w = as_tensor(input, "prelu"), as_tensor(weight, "prelu", "weight")
    if w.numel() > 1:
        w = w.reshape((1, -1) + (1,) * (x.ndim - 2)) if x.ndim > 1 else w
    return where(x.data > 0, x, x * w)


def instance_norm(
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Any:
    """Each (sample, channel) plane of (N, C, ...) normalised by its own statistics, then per-channel affine
    (only ``use_input_stats=True`` without running statistics)."""
    if not use_input_stats or running_mean is not None or running_var is not None:
        raise ValueError(f"instance_norm: running statistics are not supported{called_at()}")
    x = as_tensor(input, "instance_norm")
    return group_norm(x, x.shape[1], weight, bias, eps)


def _channel_dropout(name: str, input: Any, p: float, training: bool, batched_ndim: int) -> Any:
    x = as_tensor(input, name)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p must be a probability in [0, 1], got {p!r}{called_at()}")
    if not training or p == 0:
        return x
    lead = 2 if x.ndim == batched_ndim else 1  # (N, C, ...) or unbatched (C, ...)
    keep = torch.full(tuple(x.shape[:lead]) + (1,) * (x.ndim - lead), 1 - p, dtype=x.dtype, device=x.device)
    mask = torch.bernoulli(keep) / (1 - p) if p < 1 else keep * 0
    return x * wrap(mask)


def dropout1d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
    """Zero whole channels of (N, C, L) with probability p, scaling the rest by 1/(1-p)."""
    return _channel_dropout("dropout1d", input, p, training, 3)


def dropout2d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
    """Zero whole channels of (N, C, H, W) with probability p, scaling the rest by 1/(1-p)."""
    return _channel_dropout("dropout2d", input, p, training, 4)


def dropout3d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
    """Zero whole channels of (N, C, D, H, W) with probability p, scaling the rest by 1/(1-p)."""
    return _channel_dropout("dropout3d", input, p, training, 5)
