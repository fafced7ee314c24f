"""Batch, group and RMS normalization layers with torch's parameters, buffers and defaults."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tapegrad.engine.errors import ShapeError
from tapegrad.engine.tensors import Tensor
from tapegrad.ops import batch_norm

from . import functional as F
from ._where import called_at, layer_name
from .layers import as_tensor
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "RMSNorm"]


class _BatchNorm(Module):
    """Per-channel normalisation with the batch's statistics in training and running averages in eval."""

    _dims: tuple[int, ...] = ()

    # registered in __init__ (register_parameter / register_buffer), declared for type checkers
    weight: Parameter | None
    bias: Parameter | None
    running_mean: Any
    running_var: Any
    num_batches_tracked: Any

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.register_parameter("weight", Parameter(torch.ones(num_features, **kw)) if affine else None)
        self.register_parameter("bias", Parameter(torch.zeros(num_features, **kw)) if affine and bias else None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kw))
            self.register_buffer("running_var", torch.ones(num_features, **kw))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Zero the running mean and count, set the running variance to one."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics, and the weight and bias to ones and zeros."""
        self.reset_running_stats()
        if self.weight is not None:  # affine
            self.weight.data.fill_(1)
        if self.bias is not None:
            self.bias.data.zero_()

    def forward(self, input: Any) -> Tensor:
        """The normalised input, (N, C) or (N, C, ...) as torch's BatchNorm."""
        x = as_tensor(input)
        if x.dim() not in self._dims:
            wanted = " or ".join(f"{d}D" for d in self._dims)
            raise ShapeError(f"{layer_name(type(self).__name__)}: expected {wanted} input (got {x.dim()}D input)"
                             f"{called_at()}")  # fmt: skip
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{layer_name(type(self).__name__)}: expected {self.num_features} channels in dimension 1, "
                f"got input {tuple(x.shape)}{called_at()}"
            )
        use_batch = self.training or self.running_mean is None
        update = self.training and self.track_running_stats
        return batch_norm(
            x, self.running_mean if update or not self.training else None,
            self.running_var if update or not self.training else None, self.weight, self.bias,
            training=use_batch, momentum=self.momentum, eps=self.eps,
            num_batches_tracked=self.num_batches_tracked if update else None,
        )  # fmt: skip

    def extra_repr(self) -> str:
        """``16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True`` (torch's)."""
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L), as torch's BatchNorm1d."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W), as torch's BatchNorm2d."""

    _dims = (4,)


class GroupNorm(Module):
    """Normalises (N, C, ...) over groups of ``C // num_groups`` channels (and all positions), then a
    per-channel ``weight`` and ``bias`` (ones and zeros at first) when ``affine``: torch's GroupNorm."""

    weight: Parameter | None  # registered in __init__, declared for type checkers
    bias: Parameter | None

    def __init__(
        self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
        device: Any = None, dtype: torch.dtype | None = None, *, bias: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.register_parameter("weight", Parameter(torch.ones(num_channels, **kw)) if affine else None)
        self.register_parameter("bias", Parameter(torch.zeros(num_channels, **kw)) if affine and bias else None)

    def forward(self, input: Any) -> Tensor:
        """The normalised input, of the input's shape."""
        x = as_tensor(input)
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ShapeError(
                f"{layer_name('GroupNorm')}: expected input (N, {self.num_channels}, ...), got {tuple(x.shape)}"
                f"{called_at()}"
            )
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        """``2, 8, eps=1e-05, affine=True, bias=True``."""
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


class RMSNorm(Module):
    """``x / sqrt(mean(x**2) + eps) * weight`` over the last ``len(normalized_shape)`` dimensions; ``eps``
    None is the input dtype's machine epsilon (torch's RMSNorm)."""

    def __init__(
        self, normalized_shape: int | Sequence[int], eps: float | None = None, elementwise_affine: bool = True,
        device: Any = None, dtype: torch.dtype | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(torch.ones(shape, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def forward(self, input: Any) -> Tensor:
        """The normalised input, of the input's shape."""
        x = as_tensor(input)
        n = len(self.normalized_shape)
        if x.dim() < n or tuple(x.shape[x.dim() - n :]) != self.normalized_shape:
            raise ShapeError(
                f"{layer_name('RMSNorm')} expects inputs ending in {self.normalized_shape}, got {tuple(x.shape)}"
                f"{called_at()}"
            )
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        """``(8,), eps=None, elementwise_affine=True``."""
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
