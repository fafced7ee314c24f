"""2-D pooling: max_pool2d (the gradient goes to each window's argmax) and avg_pool2d (linear)."""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import primitive
from ..engine.tensors import Tensor, wrap
from ._adjoint import adjoint_pair
from ._operands import raw
from .conv import pair
from .gathering import gather_scatter

__all__ = ["max_pool2d", "avg_pool2d", "avg_pool2d_backward"]

_MAX_POOL: Any = torch.ops.aten.max_pool2d_with_indices.default._op
_AVG_POOL: Any = torch.ops.aten.avg_pool2d.default._op
_AVG_POOL_BACKWARD: Any = torch.ops.aten.avg_pool2d_backward.default._op


def _max_vjp(
    g: Any,
    out: Any,
    x: Any,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool,
) -> Any:
    _, idx = _MAX_POOL(raw(x), kernel_size, stride, padding, dilation, ceil_mode)
    lead = tuple(x.shape[:-2])
    d = len(lead)  # the flat position in each (H, W) plane is what max_pool2d's indices count
    flat = gather_scatter(
        g.reshape(*lead, -1), dim=d, index=idx.reshape(*lead, -1), shape=(*lead, x.shape[-2] * x.shape[-1])
    )
    return flat.reshape(x.shape)


_max_pool2d = primitive(
    "max_pool2d",
    lambda x, kernel_size, stride, padding, dilation, ceil_mode: _MAX_POOL(
        x, kernel_size, stride, padding, dilation, ceil_mode
    )[0],
    [_max_vjp],
    "max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode): window maxima; the gradient goes "
    "to the index torch returns.",
    saves=(0,),
)


def _avg_backward(g: torch.Tensor, shape: tuple[int, ...], **params: Any) -> torch.Tensor:
    like = g.new_zeros(()).expand(shape)  # the kernel reads only the input's shape
    return _AVG_POOL_BACKWARD(g, like, **params)


# params: kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override (aten's names)
_avg_pool2d, avg_pool2d_backward = adjoint_pair(
    "avg_pool2d",
    lambda x, **params: _AVG_POOL(x, **params),
    "avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override): window means.",
    "avg_pool2d_backward",
    _avg_backward,
    "avg_pool2d_backward(g, shape, ...): the gradient of avg_pool2d (its adjoint, linear in g).",
)


def _window(op: str, input: Any, kernel_size: Any, stride: Any, padding: Any) -> tuple:
    x = raw(input)
    if x.dim() not in (3, 4):
        raise ShapeError(
            f"{op}: expects input (N, C, H, W) or (C, H, W), got {tuple(x.shape)} (called at {call_site()})"
        )
    kernel = pair(kernel_size, "kernel_size", op)
    default = stride is None or (isinstance(stride, (tuple, list)) and not stride)  # torch: [] is the kernel
    step = kernel if default else pair(stride, "stride", op)
    pad = pair(padding, "padding", op)
    if any(p * 2 > k for p, k in zip(pad, kernel)):
        raise ValueError(f"{op}: padding {pad} should be at most half of kernel_size {kernel} (torch's rule)")
    return kernel, step, pad


def max_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Maxima over sliding windows of (N, C, H, W) or (C, H, W), as torch's max_pool2d (stride defaults
    to kernel_size); with ``return_indices`` also the flat index of each maximum in its plane."""
    kernel, step, pad = _window("max_pool2d", input, kernel_size, stride, padding)
    dil = pair(dilation, "dilation", "max_pool2d")
    out = _max_pool2d(input, kernel_size=kernel, stride=step, padding=pad, dilation=dil, ceil_mode=ceil_mode)
    if not return_indices:
        return out
    _, idx = _MAX_POOL(raw(input), kernel, step, pad, dil, ceil_mode)
    return out, (wrap(idx) if isinstance(out, Tensor) else idx)


def avg_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Any:
    """Means over sliding windows of (N, C, H, W) or (C, H, W), as torch's avg_pool2d."""
    kernel, step, pad = _window("avg_pool2d", input, kernel_size, stride, padding)
    return _avg_pool2d(
        input,
        kernel_size=kernel,
        stride=step,
        padding=pad,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
    )
