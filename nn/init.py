"""Weight initialisation (`nn.init`) with PyTorch's init formulas, filling tensors in place.

Each function takes a `Parameter`, a `tg.Tensor` or a ``torch.Tensor``, fills its data with
plain torch ops (nothing is recorded) and returns it. They draw from torch's global RNG, or
from ``generator``, in the same order as torch, so equal seeds give torch's exact values.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from tapegrad.engine.tensors import Tensor

__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
]  # fmt: skip

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def _data(tensor: Any) -> torch.Tensor:
    if isinstance(tensor, Tensor):
        return tensor.data
    if isinstance(tensor, torch.Tensor):
        return tensor
    raise TypeError(f"nn.init expects a tg.Tensor, nn.Parameter or torch.Tensor, got {type(tensor).__name__}")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (as PyTorch's calculate_gain)."""
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _fans(t: torch.Tensor) -> tuple[int, int]:
    if t.dim() < 2:
        raise ValueError(f"fan in and fan out need a tensor of at least 2 dimensions, got shape {tuple(t.shape)}")
    receptive = 1
    for s in t.shape[2:]:
        receptive *= s
    return t.shape[1] * receptive, t.shape[0] * receptive


def _fan(t: torch.Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(t)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None) -> Any:
    """Fill with U(a, b)."""
    _data(tensor).uniform_(a, b, generator=generator)
    return tensor


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None) -> Any:
    """Fill with N(mean, std^2)."""
    _data(tensor).normal_(mean, std, generator=generator)
    return tensor


def constant_(tensor: Any, val: float) -> Any:
    """Fill with ``val``."""
    _data(tensor).fill_(val)
    return tensor


def zeros_(tensor: Any) -> Any:
    """Fill with zeros."""
    _data(tensor).zero_()
    return tensor


def ones_(tensor: Any) -> Any:
    """Fill with ones."""
    _data(tensor).fill_(1.0)
    return tensor


def xavier_uniform_(tensor: Any, gain: float = 1.0, generator: torch.Generator | None = None) -> Any:
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(_data(tensor))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std  # torch's order of operations, so equal seeds give equal bits
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Any, gain: float = 1.0, generator: torch.Generator | None = None) -> Any:
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(_data(tensor))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor: Any, a: float, mode: str, nonlinearity: str) -> float | None:
    """He's standard deviation: gain(nonlinearity, a) / sqrt(fan), fan chosen by ``mode`` (None: empty)."""
    data = _data(tensor)
    if 0 in data.shape:
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(data, mode))


def kaiming_uniform_(
    tensor: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Any:
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan), gain from ``nonlinearity`` and ``a``."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Any:
    """He normal: N(0, std^2) with std = gain / sqrt(fan)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return tensor if std is None else normal_(tensor, 0.0, std, generator)


def trunc_normal_(
    tensor: Any, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
    generator: torch.Generator | None = None,
) -> Any:  # fmt: skip
    """Fill with N(mean, std^2) truncated to [a, b], by torch's rejection sampling (torch's draws, so
    torch's values for the same generator): redrawn normals when most mass lies inside [a, b], else
    uniform proposals on [a, b] accepted with the normal's density."""
    data = _data(tensor)

    def cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    with torch.no_grad():
        if cdf((b - mean) / std) - cdf((a - mean) / std) > 0.3:
            lo, hi = data.new_tensor(a, device="cpu").item(), data.new_tensor(b, device="cpu").item()
            result = data.normal_(mean, std, generator=generator)
            while bool((mask := (result < lo) | (result > hi)).any()):
                result = torch.where(mask, torch.empty_like(result).normal_(mean, std, generator=generator), result)
            if result is not data:
                data.copy_(result)
            return tensor
        log_peak = -0.5 * ((max(a, min(mean, b)) - mean) / std) ** 2

        def rejected(candidates: torch.Tensor) -> torch.Tensor:
            log_pdf = candidates.sub(mean).div_(std).pow_(2).mul_(-0.5).sub_(log_peak)
            return torch.empty_like(data).uniform_(generator=generator).log_().gt(log_pdf)

        data.uniform_(a, b, generator=generator)
        pending = rejected(data)
        result = data
        while bool(pending.any()):
            candidates = torch.empty_like(data).uniform_(a, b, generator=generator)
            result = torch.where(pending, candidates, result)
            pending = torch.where(pending, rejected(candidates), pending)
        if result is not data:
            data.copy_(result)
    return tensor


def eye_(tensor: Any) -> Any:
    """Fill a 2-D tensor with the identity matrix."""
    data = _data(tensor)
    if data.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    data.copy_(torch.eye(*data.shape, dtype=data.dtype, device=data.device))
    return tensor


def dirac_(tensor: Any, groups: int = 1) -> Any:
    """Fill a 3-, 4- or 5-D convolution weight with the Dirac delta (each group passes its inputs through)."""
    data = _data(tensor)
    if data.dim() not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if data.shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    per_group = data.shape[0] // groups
    centre = tuple(s // 2 for s in data.shape[2:])
    data.zero_()
    for g in range(groups):
        for d in range(min(per_group, data.shape[1])):
            data[(g * per_group + d, d) + centre] = 1
    return tensor


def orthogonal_(tensor: Any, gain: float = 1.0, generator: torch.Generator | None = None) -> Any:
    """Fill with a (semi-)orthogonal matrix from the QR decomposition of a normal draw, times ``gain``."""
    data = _data(tensor)
    if data.dim() < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if data.numel() == 0:
        return tensor
    rows = data.shape[0]
    cols = data.numel() // rows
    flat = data.new_empty((rows, cols)).normal_(0, 1, generator=generator)
    if rows < cols:
        flat.t_()
    q, r = torch.linalg.qr(flat)
    q *= torch.diag(r, 0).sign()
    if rows < cols:
        q.t_()
    with torch.no_grad():
        data.view_as(q).copy_(q)
        data.mul_(gain)
    return tensor


def sparse_(tensor: Any, sparsity: float, std: float = 0.01, generator: torch.Generator | None = None) -> Any:
    """Fill a 2-D tensor with N(0, std^2) and zero a ``sparsity`` fraction of each column (torch's draws)."""
    data = _data(tensor)
    if data.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    rows, cols = data.shape
    zeros = int(math.ceil(sparsity * rows))
    with torch.no_grad():
        data.normal_(0, std, generator=generator)
        for col in range(cols):
            data[torch.randperm(rows)[:zeros], col] = 0
    return tensor


__all__ += ["trunc_normal_", "eye_", "dirac_", "orthogonal_", "sparse_"]
