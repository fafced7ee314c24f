"""Negative log-likelihood with torch's class ``weight`` and ``ignore_index`` (its mean reduction
divides by the summed weights of the counted targets); cross-entropy is `tg.cross_entropy`."""

from __future__ import annotations

from typing import Any

import torch

from tapegrad.engine.errors import ShapeError
from tapegrad.engine.tensors import Tensor, wrap

__all__ = ["nll_loss", "class_rows", "class_weights"]


def class_weights(weight: Any) -> torch.Tensor | None:
    """One weight per class as a torch tensor (a constant), or None."""
    if weight is None:
        return None
    return weight.data if isinstance(weight, Tensor) else torch.as_tensor(weight)


def class_rows(input: Any, target: torch.Tensor) -> tuple[Any, torch.Tensor, tuple[int, ...]]:
    """(N, C, d1, ...) scores as (N * d1 * ..., C) rows and flat targets; returns the shape a
    ``reduction="none"`` loss takes (the target's, or () for one unbatched (C,) input)."""
    if input.ndim == 1:
        return input.reshape(1, -1), target.reshape(1), ()
    if input.ndim == 2:
        return input, target, (input.shape[0],)
    rows = input.permute(0, *range(2, input.ndim), 1)  # the class dimension last
    shape = (input.shape[0], *input.shape[2:])
    return rows.reshape(-1, input.shape[1]), target.reshape(-1), shape


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
