"""The losses of ``nn.functional``, with torch's signatures: each runs its loss layer's ``forward``, so
the functional and the layer form compute the same thing by the same code."""

from __future__ import annotations

from typing import Any

from tapegrad.ops import log
from tapegrad.tensor import Tensor

from .layers import as_tensor
from .losses import CrossEntropyLoss, L1Loss, MSELoss, _reduce
from .losses_extra import BCELoss, BCEWithLogitsLoss, HuberLoss, NLLLoss, SmoothL1Loss

__all__ = [
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div",
]  # fmt: skip


def _reduction(size_average: Any, reduce: Any, reduction: str) -> str:
    """torch's legacy ``size_average`` / ``reduce`` arguments, when given, decide the reduction."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is not None and not reduce:
        return "none"
    return "sum" if size_average is not None and not size_average else "mean"


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits (N, C, ...) against class indices (N, ...) or class probabilities."""
    layer = CrossEntropyLoss(
        weight, None, ignore_index, None, _reduction(size_average, reduce, reduction), label_smoothing
    )
    return layer.forward(input, target)


def nll_loss(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C, ...) at class indices (N, ...)."""
    return NLLLoss(weight, None, ignore_index, None, _reduction(size_average, reduce, reduction)).forward(input, target)


def mse_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", weight: Any = None
) -> Tensor:
    """(input - target)**2, reduced (``weight`` rescales each element before the reduction)."""
    mode = _reduction(size_average, reduce, reduction)
    if weight is None:
        return MSELoss(mode).forward(input, target)
    return _reduce(MSELoss("none").forward(input, target) * weight, mode)


def l1_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", weight: Any = None
) -> Tensor:
    """abs(input - target), reduced."""
    mode = _reduction(size_average, reduce, reduction)
    if weight is None:
        return L1Loss(mode).forward(input, target)
    return _reduce(L1Loss("none").forward(input, target) * weight, mode)


def smooth_l1_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    """0.5 * d**2 / beta where abs(d) < beta, else abs(d) - 0.5 * beta."""
    return SmoothL1Loss(None, None, _reduction(size_average, reduce, reduction), beta).forward(input, target)


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0, weight: Any = None) -> Tensor:
    """0.5 * d**2 where abs(d) < delta, else delta * (abs(d) - 0.5 * delta)."""
    if weight is None:
        return HuberLoss(reduction, delta).forward(input, target)
    return _reduce(HuberLoss("none", delta).forward(input, target) * weight, reduction)


def binary_cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """-(y log p + (1 - y) log(1 - p)) of probabilities ``input``, each log clamped at -100."""
    return BCELoss(weight, None, None, _reduction(size_average, reduce, reduction)).forward(input, target)


def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Binary cross-entropy of logits ``input``, stable for large abs(input)."""
    layer = BCEWithLogitsLoss(weight, None, None, _reduction(size_average, reduce, reduction), pos_weight)
    return layer.forward(input, target)


def kl_div(
    input: Any,
    target: Any,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """target * (log(target) - input) of log-probabilities ``input``; ``reduction="batchmean"`` divides
    the sum by the batch size (torch's "mean" divides by every element)."""
    x = as_tensor(input, "kl_div")
    y = as_tensor(target, "kl_div", "target")
    if log_target:
        loss = y.exp() * (y - x)
    else:
        # 0 * log(0) is 0, as torch's xlogy: the target's zeros contribute nothing
        positive = y.data > 0
        safe = y.masked_fill(~positive, 1.0)
        loss = (y * log(safe) - y * x).masked_fill(~positive, 0.0)
    return _reduce(loss, _reduction(size_average, reduce, reduction))
