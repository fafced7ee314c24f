"""More of torch's activation layers: SiLU, Mish, Hardtanh, ReLU6, ELU, CELU, SELU, PReLU (a
parameter), Hardsigmoid, Hardswish, LogSigmoid, Softsign, each composed of recorded tapegrad ops."""

from __future__ import annotations

from typing import Any

import torch

from tapegrad.ops import clamp, expm1, sigmoid, softplus, tanh, where

from .layers import as_tensor
from .module import Module, Parameter

__all__ = [
    "SiLU", "Mish", "Hardtanh", "ReLU6", "ELU", "CELU", "SELU", "PReLU", "Hardsigmoid", "Hardswish",
    "LogSigmoid", "Softsign",
]  # fmt: skip

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _elu(x: Any, alpha: float, scale: float = 1.0, input_scale: float = 1.0) -> Any:
    negative = expm1(x * input_scale) * (alpha * scale)
    return where(x > 0, x * scale, negative)


class SiLU(Module):
    """x * sigmoid(x) (swish)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Apply silu."""
        x = as_tensor(x)
        return x * sigmoid(x)


class Mish(Module):
    """x * tanh(softplus(x))."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Apply mish."""
        x = as_tensor(x)
        return x * tanh(softplus(x))


class Hardtanh(Module):
    """x clamped to [min_val, max_val]."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if max_val <= min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x: Any) -> Any:
        """Apply hardtanh."""
        return clamp(as_tensor(x), self.min_val, self.max_val)

    def extra_repr(self) -> str:
        """``min_val=-1.0, max_val=1.0``."""
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(Hardtanh):
    """min(max(x, 0), 6)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0)

    def extra_repr(self) -> str:
        """Nothing, as torch's ReLU6."""
        return ""


class ELU(Module):
    """x for x > 0, else alpha * (exp(x) - 1)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Any) -> Any:
        """Apply elu."""
        return _elu(as_tensor(x), self.alpha)

    def extra_repr(self) -> str:
        """``alpha=1.0``."""
        return f"alpha={self.alpha}"


class CELU(Module):
    """x for x > 0, else alpha * (exp(x / alpha) - 1)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if alpha == 0:
            raise ValueError("CELU: alpha must not be 0")
        self.alpha = alpha

    def forward(self, x: Any) -> Any:
        """Apply celu."""
        return _elu(as_tensor(x), self.alpha, input_scale=1.0 / self.alpha)

    def extra_repr(self) -> str:
        """``alpha=1.0``."""
        return f"alpha={self.alpha}"


class SELU(Module):
    """scale * (x for x > 0, else alpha * (exp(x) - 1)) with the self-normalising constants."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Apply selu."""
        return _elu(as_tensor(x), _SELU_ALPHA, _SELU_SCALE)


class PReLU(Module):
    """x for x >= 0, else weight * x, with a learned ``weight`` (one, or one per channel of dim 1)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(torch.full((num_parameters,), float(init), device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        """Every slope back to ``init``."""
        self.weight.data.fill_(self.init)

    def forward(self, x: Any) -> Any:
        """Apply prelu."""
        x = as_tensor(x)
        w = self.weight
        if self.num_parameters > 1 and x.dim() >= 2:
            w = w.reshape((-1,) + (1,) * (x.dim() - 2))
        return where(x >= 0, x, x * w)

    def extra_repr(self) -> str:
        """``num_parameters=1``."""
        return f"num_parameters={self.num_parameters}"


class Hardsigmoid(Module):
    """relu6(x + 3) / 6."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Apply hardsigmoid."""
        return clamp(as_tensor(x) / 6 + 0.5, 0.0, 1.0)


class Hardswish(Module):
    """x * relu6(x + 3) / 6."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Apply hardswish."""
        x = as_tensor(x)
        return x * clamp(x / 6 + 0.5, 0.0, 1.0)


class LogSigmoid(Module):
    """log(sigmoid(x)) = -softplus(-x)."""

    def forward(self, x: Any) -> Any:
        """Apply logsigmoid."""
        return -softplus(-as_tensor(x))


class Softsign(Module):
    """x / (1 + |x|)."""

    def forward(self, x: Any) -> Any:
        """Apply softsign."""
        x = as_tensor(x)
        return x / (x.abs() + 1)
