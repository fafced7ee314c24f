"""The losses of ``nn.functional``, with torch's signatures: each runs its loss layer's ``forward``, so
the functional and the layer form compute the same thing by the same code."""

from __future__ import annotations

import math
from typing import Any

from tapegrad.engine.tensors import Tensor
from tapegrad.ops import clamp, cross_entropy, log, norm, softplus, where
from tapegrad.ops.losses import legacy_reduction

from .layers import as_tensor
from .losses import L1Loss, MSELoss, _reduce
from .losses_extra import BCELoss, BCEWithLogitsLoss, HuberLoss, NLLLoss, SmoothL1Loss

__all__ = [
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div", "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
    "multilabel_soft_margin_loss", "cosine_embedding_loss", "poisson_nll_loss", "gaussian_nll_loss",
    "triplet_margin_loss",
]  # fmt: skip


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
    layer = NLLLoss(weight, None, ignore_index, None, legacy_reduction(size_average, reduce, reduction))
    return layer.forward(input, target)


def mse_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", weight: Any = None
) -> Tensor:
    """(input - target)**2, reduced (``weight`` rescales each element before the reduction)."""
    return _weighted(MSELoss, input, target, legacy_reduction(size_average, reduce, reduction), weight)


def l1_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", weight: Any = None
) -> Tensor:
    """abs(input - target), reduced (``weight`` rescales each element before the reduction)."""
    return _weighted(L1Loss, input, target, legacy_reduction(size_average, reduce, reduction), weight)


def _weighted(loss: Any, input: Any, target: Any, mode: str, weight: Any) -> Tensor:
    """An elementwise loss layer's value, each element rescaled by ``weight`` before the reduction."""
    if weight is None:
        return loss(mode).forward(input, target)
    return _reduce(loss("none").forward(input, target) * weight, mode)


def smooth_l1_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    """0.5 * d**2 / beta where abs(d) < beta, else abs(d) - 0.5 * beta."""
    return SmoothL1Loss(None, None, legacy_reduction(size_average, reduce, reduction), beta).forward(input, target)


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
    return BCELoss(weight, None, None, legacy_reduction(size_average, reduce, reduction)).forward(input, target)


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
    layer = BCEWithLogitsLoss(weight, None, None, legacy_reduction(size_average, reduce, reduction), pos_weight)
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
    return _reduce(loss, legacy_reduction(size_average, reduce, reduction))


def margin_ranking_loss(
    input1: Any, input2: Any, target: Any, margin: float = 0.0, size_average: Any = None, reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:  # fmt: skip
    """max(0, -target * (input1 - input2) + margin), reduced."""
    loss = clamp(-as_tensor(target, "margin_ranking_loss", "target") * (input1 - input2) + margin, min=0.0)
    return _reduce(loss, legacy_reduction(size_average, reduce, reduction))


def hinge_embedding_loss(
    input: Any, target: Any, margin: float = 1.0, size_average: Any = None, reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:  # fmt: skip
    """x where target is 1, max(0, margin - x) where it is -1, reduced."""
    x, y = as_tensor(input, "hinge_embedding_loss"), as_tensor(target, "hinge_embedding_loss", "target")
    loss = where(y.data == 1, x, 0.0) + where(y.data == -1, clamp(margin - x, min=0.0), 0.0)
    return _reduce(loss, legacy_reduction(size_average, reduce, reduction))


def soft_margin_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
) -> Tensor:
    """log(1 + exp(-target * input)), reduced."""
    loss = softplus(-as_tensor(target, "soft_margin_loss", "target") * input)
    return _reduce(loss, legacy_reduction(size_average, reduce, reduction))


def multilabel_soft_margin_loss(
    input: Any, target: Any, weight: Any = None, size_average: Any = None, reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:  # fmt: skip
    """The mean over classes of the binary cross-entropy of logits, per sample, then reduced."""
    x, y = as_tensor(input, "multilabel_soft_margin_loss"), as_tensor(target, "multilabel_soft_margin_loss", "target")
    loss = y * softplus(-x) + (1 - y) * softplus(x)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss.mean(-1), legacy_reduction(size_average, reduce, reduction))


def cosine_embedding_loss(
    input1: Any, input2: Any, target: Any, margin: float = 0.0, size_average: Any = None, reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:  # fmt: skip
    """1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1 (cos along dim 1)."""
    a, b = as_tensor(input1, "cosine_embedding_loss"), as_tensor(input2, "cosine_embedding_loss", "input2")
    y = target.data if isinstance(target, Tensor) else target
    eps = 1e-12  # torch's EPSILON inside the norms
    cos = (a * b).sum(-1) / ((a * a).sum(-1) + eps).sqrt() / ((b * b).sum(-1) + eps).sqrt()
    loss = where(y == 1, 1 - cos, 0.0) + where(y == -1, clamp(cos - margin, min=0.0), 0.0)
    return _reduce(loss, legacy_reduction(size_average, reduce, reduction))


def poisson_nll_loss(
    input: Any, target: Any, log_input: bool = True, full: bool = False, size_average: Any = None, eps: float = 1e-8,
    reduce: Any = None, reduction: str = "mean",
) -> Tensor:  # fmt: skip
    """exp(input) - target * input (log_input), or input - target * log(input + eps); ``full`` adds
    Stirling's term for targets above 1."""
    x, y = as_tensor(input, "poisson_nll_loss"), as_tensor(target, "poisson_nll_loss", "target")
    loss = x.exp() - y * x if log_input else x - y * log(x + eps)
    if full:
        big = y.data > 1
        safe = y.masked_fill(~big, 2.0)
        loss = loss + (safe * log(safe) - safe + 0.5 * log(safe * (2 * math.pi))).masked_fill(~big, 0.0)
    return _reduce(loss, legacy_reduction(size_average, reduce, reduction))


def gaussian_nll_loss(
    input: Any, target: Any, var: Any, full: bool = False, eps: float = 1e-6, reduction: str = "mean"
) -> Tensor:
    """0.5 * (log(max(var, eps)) + (input - target)**2 / max(var, eps)), plus 0.5 * log(2 pi) when ``full``."""
    x, v = as_tensor(input, "gaussian_nll_loss"), as_tensor(var, "gaussian_nll_loss", "var")
    if v.ndim == x.ndim - 1 or (v.ndim == x.ndim and v.shape[-1] == 1 and x.shape[-1] != 1):
        v = v.reshape(*v.shape[: x.ndim - 1], 1)  # one variance per sample
    v = clamp(v, min=eps)
    loss = 0.5 * (log(v) + (x - target) ** 2 / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def triplet_margin_loss(
    anchor: Any, positive: Any, negative: Any, margin: float = 1.0, p: float = 2, eps: float = 1e-6,
    swap: bool = False, size_average: Any = None, reduce: Any = None, reduction: str = "mean",
) -> Tensor:  # fmt: skip
    """max(d(a, p) - d(a, n) + margin, 0) with d the p-norm distance of the last dimension (+ eps)."""
    a = as_tensor(anchor, "triplet_margin_loss")
    d_pos = norm(a - positive + eps, p, -1)
    d_neg = norm(a - negative + eps, p, -1)
    if swap:
        d_swap = norm(as_tensor(positive, "triplet_margin_loss", "positive") - negative + eps, p, -1)
        d_neg = where(d_swap.data < d_neg.data, d_swap, d_neg)
    return _reduce(clamp(d_pos - d_neg + margin, min=0.0), legacy_reduction(size_average, reduce, reduction))
