"""Negative log-likelihood and cross-entropy with torch's class ``weight``, ``ignore_index`` and
``label_smoothing`` (its mean reduction divides by the summed weights of the counted targets)."""

from __future__ import annotations

from typing import Any, overload

import torch

from tapegrad.errors import ShapeError
from tapegrad.ops import log_softmax
from tapegrad.tensor import Tensor, wrap

__all__ = ["nll_loss", "cross_entropy", "class_rows", "class_weights"]


def class_weights(weight: Any) -> torch.Tensor | None:
    """One weight per class as a torch tensor (a constant), or None."""
    if weight is None:
        return None
    return weight.data if isinstance(weight, Tensor) else torch.as_tensor(weight)


@overload
def class_rows(input: Any, target: torch.Tensor) -> tuple[Any, torch.Tensor, tuple[int, ...]]: ...
@overload
def class_rows(input: Any, target: None) -> tuple[Any, None, tuple[int, ...]]: ...
def class_rows(input: Any, target: torch.Tensor | None) -> tuple[Any, torch.Tensor | None, tuple[int, ...]]:
    """(N, C, d1, ...) scores as (N * d1 * ..., C) rows and flat targets; returns the shape a
    ``reduction="none"`` loss takes (the target's, or () for one unbatched (C,) input)."""
    if input.ndim == 1:
        return input.reshape(1, -1), None if target is None else target.reshape(1), ()
    if input.ndim == 2:
        return input, target, (input.shape[0],)
    rows = input.permute(0, *range(2, input.ndim), 1)  # the class dimension last
    shape = (input.shape[0], *input.shape[2:])
    return rows.reshape(-1, input.shape[1]), None if target is None else target.reshape(-1), shape


def _check_targets(layer: str, target: torch.Tensor, classes: int, ignore_index: int) -> None:
    counted = target[target != ignore_index]
    if counted.numel() and (int(counted.min()) < 0 or int(counted.max()) >= classes):
        raise ValueError(
            f"{layer}: class indices must lie in [0, {classes - 1}] (or equal ignore_index={ignore_index}), got "
            f"values in [{int(counted.min())}, {int(counted.max())}]"
        )


def _weights(target: torch.Tensor, weight: torch.Tensor | None, ignore_index: int, like: torch.Tensor) -> torch.Tensor:
    """Each row's class weight (0 where ignored), a constant in the scores' dtype."""
    counted = target != ignore_index
    safe = torch.where(counted, target, 0)
    w = torch.ones(len(target), dtype=like.dtype, device=like.device) if weight is None else weight.to(like.dtype)[safe]
    return w * counted


def nll_loss(
    logp: Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    layer: str = "NLLLoss",
) -> Tensor:
    """-logp[i, target[i]] * weight[target[i]], reduced as torch's nll_loss (log-probabilities in, (N, C, ...))."""
    rows, flat, shape = class_rows(logp, target.long())
    if weight is not None and tuple(weight.shape) != (rows.shape[1],):
        raise ShapeError(
            f"{layer}: weight must have shape ({rows.shape[1]},) (one per class), got {tuple(weight.shape)}"
        )
    _check_targets(layer, flat, rows.shape[1], ignore_index)
    w = _weights(flat, weight, ignore_index, rows.data)
    safe = torch.where(flat != ignore_index, flat, 0)
    picked = rows.gather(1, safe.unsqueeze(1)).reshape(-1)
    loss = -picked * wrap(w)
    if reduction == "mean":
        return loss.sum() / float(w.sum())
    if reduction == "sum":
        return loss.sum()
    return loss.reshape(shape)


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    indices: bool = True,
) -> Tensor:
    """torch's cross_entropy of scores (N, C, ...) against class indices or class probabilities."""
    logp = log_softmax(input, dim=1 if input.ndim > 1 else 0)
    classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    eps = label_smoothing
    if indices:
        labels = target.data if isinstance(target, Tensor) else target
        nll: Any = nll_loss(logp, labels, weight, ignore_index, reduction, "CrossEntropyLoss")
        if eps == 0:
            return nll
        rows, flat, shape = class_rows(logp, labels.long())
        counted = (flat != ignore_index).to(rows.dtype)
        per_class = rows if weight is None else rows * wrap(weight.to(rows.dtype))
        smooth = -per_class.sum(1) * wrap(counted)
        if reduction == "mean":
            total = _weights(flat, weight, ignore_index, rows.data).sum() if weight is not None else counted.sum()
            smooth = smooth.sum() / float(total)
        elif reduction == "sum":
            smooth = smooth.sum()
        else:
            smooth = smooth.reshape(shape)
        return nll * (1 - eps) + smooth * (eps / classes)
    probs: Any = target if isinstance(target, Tensor) else wrap(torch.as_tensor(target, dtype=input.dtype))
    if eps:
        probs = probs * (1 - eps) + eps / classes
    rows, _, shape = class_rows(logp * probs, None)
    if weight is not None:
        rows = rows * wrap(weight.to(rows.dtype))
    loss = -rows.sum(1)
    if reduction == "mean":
        return loss.sum() / (input.numel() // classes if input.ndim > 1 else 1)
    if reduction == "sum":
        return loss.sum()
    return loss.reshape(shape)
