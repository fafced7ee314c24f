"""2-D convolution as three bilinear primitives, each one's VJP made of the other two (any order).

``conv2d(x, w)`` is the layer; ``conv2d_input(g, w)`` (a transposed convolution) is its gradient
for x and ``conv2d_weight(x, g)`` its gradient for w. Each is linear in both arguments, and
the partial derivatives of each are the other two, so gradients of gradients stay on the tape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import Primitive, primitive
from ._operands import raw

__all__ = ["conv2d", "conv2d_input", "conv2d_weight", "pair"]

_CONV_BACKWARD: Any = torch.ops.aten.convolution_backward.default._op


def pair(value: Any, name: str, op: str = "conv2d") -> tuple[int, int]:
    """An int or a pair of ints as a pair (torch's ``_pair``), else a `ValueError` naming ``name``."""
    items = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, Sequence) else ()
    if len(items) == 1:  # torch's _pair takes a 1-tuple too
        items = items * 2
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return items


def _input_fwd(
    g: torch.Tensor,
    w: torch.Tensor,
    shape: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    # the rows and columns the forward's stride left out of the output come back as output_padding
    extra = [n - m for n, m in zip(shape[2:], transposed_size(g.shape, w.shape, stride, padding, dilation))]
    return torch.conv_transpose2d(g, w, None, stride, padding, extra, groups, dilation)


def transposed_size(
    shape: Sequence[int], weight_shape: Sequence[int], stride: Sequence[int], padding: Sequence[int],
    dilation: Sequence[int],
) -> list[int]:  # fmt: skip
    """(H, W) of a transposed convolution of (N, C, H, W) ``shape`` without output_padding: the smallest
    input size that a convolution with these settings maps to ``shape``."""
    k = weight_shape[2:]
    return [(shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (k[i] - 1) + 1 for i in range(2)]


def _weight_fwd(x: torch.Tensor, g: torch.Tensor, shape: Sequence[int], **params: Any) -> torch.Tensor:
    """params: stride, padding, dilation, groups (aten's names, as every record of this family has them)."""
    like = g.new_zeros(()).expand(shape)  # the kernel reads only the weight's shape
    mask = [False, True, False]
    return _CONV_BACKWARD(g, x, like, None, transposed=False, output_padding=[0, 0], output_mask=mask, **params)[1]


def _conv_x(g: Any, out: Any, x: Any, w: Any, b: Any = None, **p: Any) -> Any:
    return conv2d_input(g, w, shape=tuple(x.shape), **p)


def _conv_w(g: Any, out: Any, x: Any, w: Any, b: Any = None, **p: Any) -> Any:
    return conv2d_weight(x, g, shape=tuple(w.shape), **p)


def _conv_b(g: Any, out: Any, x: Any, w: Any, b: Any = None, **p: Any) -> Any:
    return g.sum((0, 2, 3))


_conv2d = primitive(
    "conv2d",
    lambda x, w, b=None, **params: torch.conv2d(x, w, b, **params),
    [_conv_x, _conv_w, _conv_b],
    "conv2d(x, w, b, stride, padding, dilation, groups): torch's 2-D cross-correlation on (N, C, H, W).",
    saves=(0, 1),
)
conv2d_input: Primitive = primitive(
    "conv2d_input",
    _input_fwd,
    [
        lambda gg, out, g, w, shape, **p: _conv2d(gg, w, **p),
        lambda gg, out, g, w, shape, **p: conv2d_weight(gg, g, shape=tuple(w.shape), **p),
    ],
    "conv2d_input(g, w, shape, ...): the gradient of conv2d for its input (a transposed convolution).",
    saves=(0, 1),
)
conv2d_weight: Primitive = primitive(
    "conv2d_weight",
    _weight_fwd,
    [
        lambda gg, out, x, g, shape, **p: conv2d_input(g, gg, shape=tuple(x.shape), **p),
        lambda gg, out, x, g, shape, **p: _conv2d(x, gg, **p),
    ],
    "conv2d_weight(x, g, shape, ...): the gradient of conv2d for its weight.",
    saves=(0, 1),
)


def _padding(padding: Any, weight_shape: torch.Size, dilation: tuple[int, int], stride: tuple[int, int]) -> tuple:
    """(symmetric padding, how many leading output rows and columns to drop): torch pads 'same' unevenly
    (one more at the end) when dilation * (kernel - 1) is odd; padding the end amount on both sides and
    dropping the first output row/column gives the same result."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("conv2d: padding='same' is not supported for strided convolutions (torch's rule)")
        total = [dilation[i] * (weight_shape[2 + i] - 1) for i in range(2)]
        return tuple((t + 1) // 2 for t in total), tuple(t % 2 for t in total)
    if isinstance(padding, str):
        raise ValueError(f"conv2d: padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    return pair(padding, "padding"), (0, 0)


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Any:
    """torch's conv2d: input (N, C_in, H, W) or (C_in, H, W), weight (C_out, C_in/groups, kH, kW).

    The gradients are conv2d_input and conv2d_weight, differentiable again (second order).
    """
    x, w = raw(input), raw(weight)
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    pad, crop = _padding(padding, w.shape, dilation, stride)
    if crop != (0, 0):
        out = conv2d(input, weight, bias, stride, pad, dilation, groups)
        return out[..., crop[0] :, crop[1] :]
    if x.dim() not in (3, 4) or w.dim() != 4:
        raise ShapeError(
            f"conv2d: expects input (N, C, H, W) or (C, H, W) and weight (C_out, C_in/groups, kH, kW), got input "
            f"{tuple(x.shape)} and weight {tuple(w.shape)} (called at {call_site()})"
        )
    if x.shape[-3] != w.shape[1] * groups:
        raise ShapeError(
            f"conv2d: input {tuple(x.shape)} has {x.shape[-3]} channels, weight {tuple(w.shape)} with groups={groups} "
            f"expects {w.shape[1] * groups} (called at {call_site()})"
        )
    params = {"stride": stride, "padding": pad, "dilation": dilation, "groups": groups}
    if x.dim() == 3:  # unbatched, as torch allows
        out = conv2d(input.unsqueeze(0), weight, bias, stride, pad, dilation, groups)
        return out.squeeze(0)
    args = (input, weight) if bias is None else (input, weight, bias)
    return _conv2d(*args, **params)
