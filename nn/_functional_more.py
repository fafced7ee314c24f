"""More of ``nn.functional``: normalisations beyond layer_norm, the rarer activations, distances and
pixel shuffles, as compositions of tapegrad ops with torch's signatures."""

from __future__ import annotations

from typing import Any

import torch

from tapegrad import ops
from tapegrad.ops import clamp, expm1, where

from ._where import called_at
from .layers import as_tensor

__all__ = [
    "group_norm", "rms_norm", "selu", "celu", "hardswish", "hardsigmoid", "softsign", "tanhshrink", "threshold",
    "cosine_similarity", "pairwise_distance", "pixel_shuffle", "pixel_unshuffle",
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
    """<x1, x2> / max(|x1| * |x2|, eps) along ``dim`` (broadcasting), as torch's."""
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
