"""Activation layers beyond ReLU / Tanh / Sigmoid, and `Dropout` (off in ``eval()``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from tapegrad.engine.tensors import Tensor
from tapegrad.ops import dropout, gelu, leaky_relu, log_softmax, softmax, softplus

from .layers import as_tensor
from .module import Module

__all__ = ["LeakyReLU", "GELU", "Softplus", "Softmax", "LogSoftmax", "Dropout"]


class LeakyReLU(Module):
    """x where x > 0, else ``negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Any) -> Tensor:
        """Apply leaky_relu."""
        return leaky_relu(as_tensor(x), self.negative_slope)

    def extra_repr(self) -> str:
        """``negative_slope=0.01``."""
        return f"negative_slope={self.negative_slope}"


class GELU(Module):
    """x * Phi(x); ``approximate="tanh"`` uses torch's tanh formula."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Tensor:
        """Apply gelu."""
        return gelu(as_tensor(x), self.approximate)

    def extra_repr(self) -> str:
        """``approximate='none'``."""
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """log(1 + exp(beta * x)) / beta, x itself where beta * x > threshold."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Any) -> Tensor:
        """Apply softplus."""
        return softplus(as_tensor(x), self.beta, self.threshold)

    def extra_repr(self) -> str:
        """``beta=1.0, threshold=20.0``."""
        return f"beta={self.beta}, threshold={self.threshold}"


class _AlongDim(Module):
    """A layer that normalises along ``dim`` with its class's ``function`` (softmax, log_softmax)."""

    function: ClassVar[Callable[[Tensor, int], Tensor]]

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise TypeError(f"{type(self).__name__}: dim must be an int (the class dimension), got {dim!r}")
        self.dim = dim

    def forward(self, x: Any) -> Tensor:
        """Apply the layer's function along ``dim``."""
        return type(self).function(as_tensor(x), self.dim)  # read through the class: through self it would bind

    def extra_repr(self) -> str:
        """``dim=1``."""
        return f"dim={self.dim}"


class Softmax(_AlongDim):
    """exp(x) / sum(exp(x)) along ``dim`` (required: torch's implicit choice is deprecated)."""

    function = softmax


class LogSoftmax(_AlongDim):
    """x - logsumexp(x) along ``dim`` (required)."""

    function = log_softmax


class Dropout(Module):
    """Zeroes each element with probability ``p`` and scales the rest by 1/(1-p) in training mode;
    the identity after ``eval()``. ``generator`` (a torch.Generator) makes the masks reproducible."""

    def __init__(self, p: float = 0.5, inplace: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability between 0 and 1, got {p!r}")
        self.p = float(p)
        self.generator = generator

    def forward(self, x: Any) -> Tensor:
        """The input with a fresh dropout mask (training), or unchanged (eval)."""
        return dropout(as_tensor(x), self.p, self.training, generator=self.generator)

    def extra_repr(self) -> str:
        """``p=0.5``."""
        return f"p={self.p}"
