"""Gradient clipping with torch's names: `clip_grad_norm_` and `clip_grad_value_` (in place on ``.grad``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from tapegrad.engine.tensors import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Iterable[Any] | Tensor) -> list[torch.Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    out = []
    for p in params:
        g = p.grad
        if g is not None:
            out.append(g.data if isinstance(g, Tensor) else g)
    return out


def clip_grad_norm_(
    parameters: Iterable[Any] | Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> torch.Tensor:
    """Scale the gradients so that their joint ``norm_type``-norm is at most ``max_norm``; returns the
    norm before clipping (a tensor), as torch's ``clip_grad_norm_`` (scale max_norm / (norm + 1e-6), capped at 1)."""
    grads = _grads(parameters)
    if not grads:
        return torch.tensor(0.0)
    norm_type = float(norm_type)
    if norm_type == math.inf:
        norms = [g.detach().abs().max() for g in grads]
        total = norms[0] if len(norms) == 1 else torch.stack(norms).max()
    else:
        norms = [torch.linalg.vector_norm(g, norm_type) for g in grads]
        total = torch.linalg.vector_norm(torch.stack(norms), norm_type)
    if error_if_nonfinite and not bool(torch.isfinite(total)):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite ({total.item()}); "
            "pass error_if_nonfinite=False to clip anyway"
        )
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    torch._foreach_mul_(grads, scale.to(grads[0].dtype))
    return total


def clip_grad_value_(parameters: Iterable[Any] | Tensor, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element into [-clip_value, clip_value] in place."""
    for g in _grads(parameters):
        g.clamp_(-clip_value, clip_value)
