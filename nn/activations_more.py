"""More of torch's activation layers: SiLU, Mish, Hardtanh, ReLU6, ELU, CELU, SELU, PReLU (a
parameter), Hardsigmoid, Hardswish, LogSigmoid, Softsign: modules over `nn.functional`'s functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from . import functional as F
from .module import Module, Parameter

__all__ = [
    "SiLU", "Mish", "Hardtanh", "ReLU6", "ELU", "CELU", "SELU", "PReLU", "Hardsigmoid", "Hardswish",
    "LogSigmoid", "Softsign",
]  # fmt: skip


class _Pointwise(Module):
    """A layer with no state that applies its class's ``function`` (an `nn.functional` one) elementwise."""

    function: ClassVar[Callable[[Any], Any]]

    def forward(self, x: Any) -> Any:
        """Apply the layer's function."""
        return type(self).function(x)  # read through the class: through self, a function would bind


class _PointwiseInplace(_Pointwise):
    """A `_Pointwise` layer whose torch twin takes ``inplace``: accepted, and the result is a new tensor."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()


class SiLU(_PointwiseInplace):
    """x * sigmoid(x) (swish)."""

    function = F.silu


class Mish(_PointwiseInplace):
    """x * tanh(softplus(x))."""

    function = F.mish


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


class SELU(_PointwiseInplace):
    """scale * (x for x > 0, else alpha * (exp(x) - 1)) with the self-normalising constants."""

    function = F.selu


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


class Hardsigmoid(_PointwiseInplace):
    """relu6(x + 3) / 6."""

    function = F.hardsigmoid


class Hardswish(_PointwiseInplace):
    """x * relu6(x + 3) / 6."""

    function = F.hardswish


class LogSigmoid(_Pointwise):
    """log(sigmoid(x)) = -softplus(-x)."""

    function = F.logsigmoid


class Softsign(_Pointwise):
    """x / (1 + abs(x))."""

    function = F.softsign
