"""More of torch's losses: binary cross-entropy (on probabilities and on logits, with ``pos_weight``),
NLL on log-probabilities, and the Huber / smooth L1 losses."""

from __future__ import annotations

from typing import Any

import torch

from tapegrad.engine.errors import ShapeError
from tapegrad.engine.tensors import Tensor, wrap
from tapegrad.ops import softplus, where

from ._where import called_at, layer_name
from .layers import as_tensor
from .losses import _Loss, _reduce
from .nll import class_weights, nll_loss

__all__ = ["BCELoss", "BCEWithLogitsLoss", "NLLLoss", "HuberLoss", "SmoothL1Loss"]


def _constant(value: Any, like: torch.Tensor) -> torch.Tensor | None:
    if value is None:
        return None
    data = value.data if isinstance(value, Tensor) else torch.as_tensor(value)
    return data.to(dtype=like.dtype, device=like.device)


def _pair(layer: str, input: Any, target: Any) -> tuple[Any, Any]:
    input = as_tensor(input)
    if not isinstance(target, Tensor):
        target = wrap(torch.as_tensor(target, dtype=input.dtype, device=input.device))
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(
            f"{layer_name(layer)}: target shape {tuple(target.shape)} differs from input shape {tuple(input.shape)}"
            f"{called_at()}"
        )
    return input, target


class BCELoss(_Loss):
    """-(y log p + (1 - y) log(1 - p)), each log clamped at -100 as torch does; ``weight`` rescales elements."""

    def __init__(self, weight: Any = None, size_average: Any = None, reduce: Any = None, reduction: str = "mean"):
        super().__init__(reduction, size_average, reduce)
        self.weight = weight

    def forward(self, input: Any, target: Any) -> Tensor:
        """The loss of probabilities ``input`` against targets in [0, 1]."""
        p, y = _pair("BCELoss", input, target)
        if p.numel() and (float(p.data.min()) < 0 or float(p.data.max()) > 1):
            raise ValueError(f"{layer_name('BCELoss')}: input values must lie in [0, 1] (probabilities){called_at()}")
        loss = -(y * p.log().clamp(min=-100) + (1 - y) * (1 - p).log().clamp(min=-100))
        w = _constant(self.weight, p.data)
        return _reduce(loss if w is None else loss * wrap(w), self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits: pos_weight * y * softplus(-x) + (1 - y) * softplus(x), stable for
    large abs(x); ``pos_weight`` (one per class, broadcast over the last dimension) weighs the positives."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        super().__init__(reduction, size_average, reduce)
        self.weight, self.pos_weight = weight, pos_weight

    def forward(self, input: Any, target: Any) -> Tensor:
        """The loss of logits ``input`` against targets in [0, 1]."""
        x, y = _pair("BCEWithLogitsLoss", input, target)
        positive = y * softplus(-x)
        pw = _constant(self.pos_weight, x.data)
        if pw is not None:
            positive = positive * wrap(pw)
        loss = positive + (1 - y) * softplus(x)
        w = _constant(self.weight, x.data)
        return _reduce(loss if w is None else loss * wrap(w), self.reduction)


class NLLLoss(_Loss):
    """-input[i, target[i]] (log-probabilities in) with class ``weight`` and ``ignore_index``, as torch's."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction, size_average, reduce)
        self.weight = class_weights(weight)
        self.ignore_index = ignore_index

    def forward(self, input: Any, target: Any) -> Tensor:
        """The loss of log-probabilities ``input`` (n, C, ...) against class indices ``target`` (n, ...)."""
        input = as_tensor(input)
        labels = target.data if isinstance(target, Tensor) else torch.as_tensor(target)
        if labels.is_floating_point():
            raise TypeError(f"{layer_name('NLLLoss')}: target must hold integer class indices, got {labels.dtype}")
        expected = (input.shape[0], *input.shape[2:]) if input.ndim > 1 else ()
        if input.ndim == 0 or tuple(labels.shape) != expected:
            raise ShapeError(
                f"{layer_name('NLLLoss')}: input {tuple(input.shape)} needs class indices of shape {expected}, got "
                f"{tuple(labels.shape)}{called_at()}"
            )
        return nll_loss(input, labels, self.weight, self.ignore_index, self.reduction)


class HuberLoss(_Loss):
    """0.5 * d**2 where abs(d) < delta, else delta * (abs(d) - 0.5 * delta), for d = input - target."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        if delta <= 0:
            raise ValueError(f"HuberLoss: delta must be positive, got {delta!r}")
        self.delta = delta

    def forward(self, input: Any, target: Any) -> Tensor:
        """The loss of ``input`` against ``target``."""
        return _reduce(_huber("HuberLoss", input, target, self.delta, per_width=False), self.reduction)


class SmoothL1Loss(_Loss):
    """0.5 * d**2 / beta where abs(d) < beta, else abs(d) - 0.5 * beta (the L1 loss when beta is 0)."""

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction, size_average, reduce)
        if beta < 0:
            raise ValueError(f"SmoothL1Loss: beta must be non-negative, got {beta!r}")
        self.beta = beta

    def forward(self, input: Any, target: Any) -> Tensor:
        """The loss of ``input`` against ``target``."""
        return _reduce(_huber("SmoothL1Loss", input, target, self.beta, per_width=True), self.reduction)


def _huber(name: str, input: Any, target: Any, width: float, per_width: bool) -> Tensor:
    """Elementwise 0.5 * d**2 where abs(d) < width, else width * (abs(d) - 0.5 * width), for d = input - target;
    divided by ``width`` when ``per_width`` (SmoothL1Loss, which is abs(d) when width is 0)."""
    x, y = _pair(name, input, target)
    d = x - y
    a = d.abs()
    if width == 0:
        return a
    if per_width:
        return where(a.data < width, d * d * (0.5 / width), a - 0.5 * width)
    return where(a.data < width, d * d * 0.5, (a - 0.5 * width) * width)
