"""The convolution, pooling, padding and resizing functions of ``nn.functional``, with torch's signatures.

1-D forms run the 2-D ops on a height-1 plane; ``pad`` and ``interpolate`` are indexing, ``cat``
and weighted sums of tapegrad ops, so they are differentiable to any order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from tapegrad import ops
from tapegrad.engine.tensors import Tensor, wrap
from tapegrad.ops import avg_pool2d, cat, conv2d, conv2d_input, max_pool2d
from tapegrad.ops.conv import transposed_size

from ._where import called_at
from .layers import as_tensor

__all__ = [
    "conv1d", "conv2d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "adaptive_avg_pool2d", "pad", "interpolate", "adaptive_avg_pool1d", "max_pool1d_with_indices",
    "max_pool2d_with_indices", "upsample", "upsample_nearest", "upsample_bilinear",
]  # fmt: skip


def _one(value: Any) -> Any:
    """An int or a 1-sequence for the width of a 1-D op, as the (1, w) pair of its 2-D form; a string,
    None or [] (the 2-D form's default stride) as it is."""
    if isinstance(value, str) or value is None or (isinstance(value, (tuple, list)) and not value):
        return value
    (v,) = (value,) if isinstance(value, int) else tuple(value)
    return (1, v)


def _pad1(value: Any) -> Any:
    return value if isinstance(value, str) else (0, _one(value)[1])


def conv1d(
    input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
) -> Any:
    """torch's conv1d: input (N, C_in, L) or (C_in, L), weight (C_out, C_in/groups, k)."""
    x, w = as_tensor(input, "conv1d"), as_tensor(weight, "conv1d", "weight")
    out = conv2d(x.unsqueeze(-2), w.unsqueeze(-2), bias, _one(stride), _pad1(padding), _one(dilation), groups)
    return out.squeeze(-2)


def conv_transpose2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Any:
    """torch's conv_transpose2d: input (N, C_in, H, W) or (C_in, H, W), weight (C_in, C_out/groups, kH, kW)."""
    x, w = as_tensor(input, "conv_transpose2d"), as_tensor(weight, "conv_transpose2d", "weight")
    if x.ndim == 3:
        return conv_transpose2d(x.unsqueeze(0), w, bias, stride, padding, output_padding, groups, dilation).squeeze(0)
    s, p, op, d = (ops.pair(v, n, "conv_transpose2d") for v, n in ((stride, "stride"), (padding, "padding"),
                   (output_padding, "output_padding"), (dilation, "dilation")))  # fmt: skip
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[0]:
        raise ValueError(
            f"conv_transpose2d: expects input (N, C_in, H, W) and weight (C_in, C_out/groups, kH, kW), got "
            f"{tuple(x.shape)} and {tuple(w.shape)}{called_at()}"
        )
    size = [n + extra for n, extra in zip(transposed_size(x.shape, w.shape, s, p, d), op)]
    shape = (x.shape[0], w.shape[1] * groups, *size)
    out = conv2d_input(x, w, shape=shape, stride=s, padding=p, dilation=d, groups=groups)
    return out if bias is None else out + as_tensor(bias, "conv_transpose2d", "bias").reshape(-1, 1, 1)


def max_pool1d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Maxima over sliding windows of (N, C, L) or (C, L)."""
    out = max_pool2d(
        as_tensor(input, "max_pool1d").unsqueeze(-2), _one(kernel_size), _one(stride), _pad1(padding),
        _one(dilation), ceil_mode, return_indices,
    )  # fmt: skip
    return tuple(o.squeeze(-2) for o in out) if return_indices else out.squeeze(-2)


def avg_pool1d(
    input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Any:  # fmt: skip
    """Means over sliding windows of (N, C, L) or (C, L)."""
    x = as_tensor(input, "avg_pool1d").unsqueeze(-2)
    return avg_pool2d(x, _one(kernel_size), _one(stride), _pad1(padding), ceil_mode, count_include_pad).squeeze(-2)


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Any:
    """Means over H/out_h x W/out_w windows; only sizes that divide the input (then torch's windows)."""
    x = as_tensor(input, "adaptive_avg_pool2d")
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    size = tuple(x.shape[-2 + i] if s is None else s for i, s in enumerate(size))
    if any(x.shape[-2 + i] % size[i] for i in range(2)):
        raise ValueError(
            f"adaptive_avg_pool2d: output_size {size} must divide the input's {tuple(x.shape[-2:])} in tapegrad"
            f"{called_at()}"
        )
    kernel = tuple(x.shape[-2 + i] // size[i] for i in range(2))
    return avg_pool2d(x, kernel, kernel)


def _along(x: Any, dim: int, index: torch.Tensor) -> Any:
    """x[..., index, ...] with an integer tensor on dimension ``dim``."""
    return x[(slice(None),) * dim + (index,)]


def _source(n: int, left: int, right: int, mode: str, device: Any) -> torch.Tensor:
    """The source position of every output position of a padded dimension (reflect/replicate/circular)."""
    i = torch.arange(-left, n + right, device=device)
    if mode == "replicate":
        return i.clamp(0, n - 1)
    if mode == "circular":
        return i.remainder(n)
    period = 2 * (n - 1)  # reflect: ... 2 1 | 0 1 2 3 | 2 1 ...
    i = i.abs().remainder(period) if period else i * 0
    return torch.where(i >= n, period - i, i)


def pad(input: Any, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Any:
    """torch's pad: ``pad`` holds (left, right) pairs from the last dimension backwards; a negative
    amount crops. Modes: constant (``value``, 0 by default), reflect, replicate, circular."""
    x = as_tensor(input, "pad")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(
            f"pad: {tuple(pad)} must hold (left, right) pairs for at most {x.ndim} dimensions{called_at()}"
        )
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be constant, reflect, replicate or circular, got {mode!r}{called_at()}")
    out: Any = x
    for k in range(len(pad) // 2):
        dim, left, right = x.ndim - 1 - k, pad[2 * k], pad[2 * k + 1]
        n = out.shape[dim]
        if mode != "constant":
            if mode == "reflect" and max(left, right) >= n:
                raise ValueError(f"pad: reflect padding {(left, right)} must be smaller than size {n}{called_at()}")
            out = _along(out, dim, _source(n, left, right, mode, x.device))
            continue
        crop = [slice(None)] * out.ndim
        crop[dim] = slice(max(-left, 0), n - max(-right, 0))
        out = out[tuple(crop)]
        parts = []
        for amount in (left, right):
            shape = list(out.shape)
            shape[dim] = max(amount, 0)
            parts.append(wrap(torch.full(shape, 0.0 if value is None else value, dtype=x.dtype, device=x.device)))
        out = cat([parts[0], out, parts[1]], dim)
    return out


def _scales(x: Tensor, size: Any, scale_factor: Any, recompute: Any) -> tuple[list[int], list[float | None]]:
    spatial = x.ndim - 2
    if (size is None) == (scale_factor is None):
        raise ValueError(f"interpolate: give exactly one of size and scale_factor{called_at()}")
    if size is not None:
        sizes = [size] * spatial if isinstance(size, int) else list(size)
        return sizes, [None] * spatial
    factors = [float(scale_factor)] * spatial if isinstance(scale_factor, (int, float)) else list(scale_factor)
    sizes = [math.floor(x.shape[2 + i] * f) for i, f in enumerate(factors)]
    return sizes, [None if recompute else f for f in factors]


def interpolate(
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Any:
    """Resize (N, C, ...) spatially, as torch's interpolate: modes nearest, linear, bilinear, trilinear
    (each spatial dimension in turn; ``align_corners`` as torch's)."""
    x = as_tensor(input, "interpolate")
    linear = mode in ("linear", "bilinear", "trilinear")
    if antialias or not (linear or mode == "nearest"):
        raise ValueError(f"interpolate: mode {mode!r} (antialias={antialias}) is not supported{called_at()}")
    sizes, factors = _scales(x, size, scale_factor, recompute_scale_factor)
    out: Any = x
    for i, (m, factor) in enumerate(zip(sizes, factors)):
        dim, n = 2 + i, x.shape[2 + i]
        dst = torch.arange(m, dtype=torch.float64, device=x.device)
        scale = 1.0 / factor if factor else n / m
        if not linear:
            out = _along(out, dim, (dst * scale).floor().long().clamp(max=n - 1))
            continue
        if align_corners:
            src = dst * ((n - 1) / (m - 1) if m > 1 else 0.0)
        else:
            src = ((dst + 0.5) * scale - 0.5).clamp(min=0)
        low = src.floor().long().clamp(max=n - 1)
        high = (low + 1).clamp(max=n - 1)
        w = (src - low).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1 - dim)))
        out = _along(out, dim, low) * wrap(1 - w) + _along(out, dim, high) * wrap(w)
    return out


def adaptive_avg_pool1d(input: Any, output_size: Any) -> Any:
    """Means over L/out windows of (N, C, L) or (C, L); only sizes that divide the input."""
    size = output_size if isinstance(output_size, int) else output_size[0]
    return adaptive_avg_pool2d(as_tensor(input, "adaptive_avg_pool1d").unsqueeze(-2), (1, size)).squeeze(-2)


def max_pool1d_with_indices(input: Any, *args: Any, **kwargs: Any) -> Any:
    """max_pool1d with ``return_indices=True``."""
    return max_pool1d(input, *args, **{**kwargs, "return_indices": True})


def max_pool2d_with_indices(input: Any, *args: Any, **kwargs: Any) -> Any:
    """max_pool2d with ``return_indices=True``."""
    return max_pool2d(input, *args, **{**kwargs, "return_indices": True})


def upsample(
    input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest", align_corners: bool | None = None
) -> Any:
    """torch's deprecated name of `interpolate`."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Any, size: Any = None, scale_factor: Any = None) -> Any:
    """interpolate(mode="nearest")."""
    return interpolate(input, size, scale_factor, "nearest")


def upsample_bilinear(input: Any, size: Any = None, scale_factor: Any = None) -> Any:
    """interpolate(mode="bilinear", align_corners=True), as torch's deprecated function."""
    return interpolate(input, size, scale_factor, "bilinear", align_corners=True)
