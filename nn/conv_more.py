"""`Conv1d`, `ConvTranspose2d` and `Upsample` (nearest, linear, bilinear): modules over
`nn.functional`'s conv1d, conv_transpose2d and interpolate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from tapegrad.engine.errors import ShapeError
from tapegrad.ops.conv import pair

from . import functional as F
from . import init as _init
from ._where import called_at, layer_name
from .layers import as_tensor
from .module import Module, Parameter

__all__ = ["Conv1d", "ConvTranspose2d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]


def _single(value: Any, name: str) -> int:
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(items) != 1 or not isinstance(items[0], int) or isinstance(items[0], bool):
        raise ValueError(f"Conv1d: {name} must be an int or a 1-tuple, got {value!r}")
    return items[0]


class _ConvBase(Module):
    """Weight and bias drawn as torch draws them: kaiming_uniform(a=sqrt(5)), bias within 1/sqrt(fan_in)."""

    # set by the subclasses (bias through register_parameter): declared for type checkers
    in_channels: int
    out_channels: int
    groups: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: Any
    bias: Parameter | None

    def _make(self, shape: tuple[int, ...], out_channels: int, bias: bool, device: Any, dtype: Any) -> None:
        self.weight = Parameter(torch.empty(shape, device=device, dtype=dtype))
        self.register_parameter(
            "bias", Parameter(torch.empty(out_channels, device=device, dtype=dtype)) if bias else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh weights and bias as torch does."""
        _init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.weight.shape[2:])
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            _init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        """``3, 8, kernel_size=(3,), stride=(1,)`` and what differs from the defaults, as torch."""
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        n = len(self.kernel_size)
        if self.padding != (0,) * n:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            text += f", dilation={self.dilation}"
        output_padding = getattr(self, "output_padding", (0,) * n)  # ConvTranspose2d's
        if output_padding != (0,) * n:
            text += f", output_padding={output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


def _check_channels(owner: str, in_channels: int, out_channels: int, groups: int, padding_mode: str) -> None:
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{owner}: in_channels and out_channels must be divisible by groups ({groups})")
    if padding_mode != "zeros":
        raise ValueError(f"{owner}: only padding_mode='zeros' is supported, got {padding_mode!r}")


class Conv1d(_ConvBase):
    """1-D convolution over (N, C, L) or (C, L); weight (out, in/groups, k), as torch's Conv1d."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
        dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
        device: Any = None, dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        _check_channels("Conv1d", in_channels, out_channels, groups, padding_mode)
        self.in_channels, self.out_channels, self.groups, self.padding_mode = (
            in_channels,
            out_channels,
            groups,
            padding_mode,
        )
        self.kernel_size = (_single(kernel_size, "kernel_size"),)
        self.stride, self.dilation = (_single(stride, "stride"),), (_single(dilation, "dilation"),)
        self.padding: Any = padding if isinstance(padding, str) else (_single(padding, "padding"),)
        self._make((out_channels, in_channels // groups, self.kernel_size[0]), out_channels, bias, device, dtype)

    def forward(self, x: Any) -> Any:
        """The convolution of ``x``: (N, out_channels, L_out) or (out_channels, L_out)."""
        x = as_tensor(x)
        if x.dim() not in (2, 3) or x.shape[-2] != self.in_channels:
            raise ShapeError(
                f"{layer_name('Conv1d')} expects input (N, {self.in_channels}, L) or ({self.in_channels}, L), "
                f"got {tuple(x.shape)}{called_at()}"
            )
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvBase):
    """The transposed 2-D convolution (the gradient of conv2d for its input), weight
    (in, out/groups, kH, kW), with ``output_padding``, as torch's ConvTranspose2d."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
        output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1,
        padding_mode: str = "zeros", device: Any = None, dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        _check_channels("ConvTranspose2d", in_channels, out_channels, groups, padding_mode)
        self.in_channels, self.out_channels, self.groups, self.padding_mode = (
            in_channels,
            out_channels,
            groups,
            padding_mode,
        )
        op = "ConvTranspose2d"
        self.kernel_size, self.stride = pair(kernel_size, "kernel_size", op), pair(stride, "stride", op)
        self.padding, self.dilation = pair(padding, "padding", op), pair(dilation, "dilation", op)
        self.output_padding = pair(output_padding, "output_padding", op)
        if any(p >= max(s, d) for p, s, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError("ConvTranspose2d: output padding must be smaller than either stride or dilation")
        self._make((in_channels, out_channels // groups, *self.kernel_size), out_channels, bias, device, dtype)

    def forward(self, x: Any, output_size: Sequence[int] | None = None) -> Any:
        """The transposed convolution of ``x`` (N, in_channels, H, W) or (in_channels, H, W)."""
        x = as_tensor(x)
        if x.dim() not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ShapeError(
                f"{layer_name('ConvTranspose2d')} expects input (N, {self.in_channels}, H, W) or "
                f"({self.in_channels}, H, W), got {tuple(x.shape)}{called_at()}"
            )
        k, s, p, d = self.kernel_size, self.stride, self.padding, self.dilation
        extra = self.output_padding
        if output_size is not None:  # the output_padding that gives the asked size, as torch works it out
            smallest = [(x.shape[-2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1 for i in range(2)]
            extra = tuple(int(v) - low for v, low in zip(tuple(output_size)[-2:], smallest))
            if any(not 0 <= e < max(s[i], d[i]) for i, e in enumerate(extra)):
                raise ValueError(
                    f"{layer_name('ConvTranspose2d')}: requested an output size of {tuple(output_size)}, but the "
                    f"smallest is {smallest} and at most stride - 1 more is possible{called_at()}"
                )
        return F.conv_transpose2d(x, self.weight, self.bias, s, p, extra, self.groups, d)


class Upsample(Module):
    """Resize (N, C, L) or (N, C, H, W) to ``size`` or by ``scale_factor`` with ``mode`` "nearest",
    "linear" or "bilinear" (``align_corners`` as torch), as torch's Upsample."""

    def __init__(
        self, size: Any = None, scale_factor: Any = None, mode: str = "nearest", align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        if mode not in ("nearest", "linear", "bilinear"):
            raise NotImplementedError(f"Upsample: mode {mode!r} is not supported (nearest, linear, bilinear)")
        if (size is None) == (scale_factor is None):
            raise ValueError("either size or scale_factor should be defined, not both")
        if mode == "nearest" and align_corners:
            raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear")
        self.name = type(self).__name__
        self.size = size
        self.scale_factor = (tuple(float(f) for f in scale_factor) if isinstance(scale_factor, (tuple, list))
                             else float(scale_factor) if scale_factor else None)  # fmt: skip
        self.mode, self.align_corners, self.recompute_scale_factor = mode, align_corners, recompute_scale_factor

    def forward(self, input: Any) -> Any:
        """The resized input."""
        x = as_tensor(input)
        spatial = x.dim() - 2
        if spatial not in (1, 2) or (self.mode == "linear") != (spatial == 1) and self.mode != "nearest":
            raise ShapeError(
                f"{layer_name(self.name)}: mode {self.mode!r} cannot resize input {tuple(x.shape)}{called_at()}"
            )
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)  # fmt: skip

    def extra_repr(self) -> str:
        """``scale_factor=2.0, mode='nearest'`` (or ``size=...``), as torch."""
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return f"{info}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Upsample with mode "nearest" on (N, C, H, W)."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Upsample with mode "bilinear" and ``align_corners=True`` on (N, C, H, W)."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
