"""More of torch's activation layers: SiLU, Mish, Hardtanh, ReLU6, ELU, CELU, SELU, PReLU (a
parameter), Hardsigmoid, Hardswish, LogSigmoid, Softsign: modules over `nn.functional`'s functions."""

from __future__ import annotations

from typing import Any

import torch

from . import functional as F
from .module import Module, Parameter

__all__ = [
    "SiLU", "Mish", "Hardtanh", "ReLU6", "ELU", "CELU", "SELU", "PReLU", "Hardsigmoid", "Hardswish",
    "LogSigmoid", "Softsign",
]  # fmt: skip


class SiLU(Module):
    """x * sigmoid(x) (swish)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Apply silu."""
        return F.silu(x)


class Mish(Module):
    """x * tanh(softplus(x))."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Apply mish."""
        return F.mish(x)


class Hardtanh(Module):
    """x clamped to [min_val, max_val]."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if max_val <= min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x: Any) -> Any:
        """Apply hardtanh."""
        return F.hardtanh(x, self.min_val, self.max_val)

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
        return F.elu(x, self.alpha)

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
        return F.celu(x, self.alpha)

    def extra_repr(self) -> str:
        """``alpha=1.0``."""
        return f"alpha={self.alpha}"


class SELU(Module):
    """scale * (x for x > 0, else alpha * (exp(x) - 1)) with the self-normalising constants."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Apply selu."""
        return F.selu(x)


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
        return F.prelu(x, self.weight)

    def extra_repr(self) -> str:
        """``num_parameters=1``."""
        return f"num_parameters={self.num_parameters}"


class Hardsigmoid(Module):
    """relu6(x + 3) / 6."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Apply hardsigmoid."""
        return F.hardsigmoid(x)


class Hardswish(Module):
    """x * relu6(x + 3) / 6."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Apply hardswish."""
        return F.hardswish(x)


class LogSigmoid(Module):
    """log(sigmoid(x)) = -softplus(-x)."""

    def forward(self, x: Any) -> Any:
        """Apply logsigmoid."""
        return F.logsigmoid(x)


class Softsign(Module):
    """x / (1 + abs(x))."""

    def forward(self, x: Any) -> Any:
        """Apply softsign."""
        return F.softsign(x)
