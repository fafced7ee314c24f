"""Batch normalization as one fused primitive: aten's native_batch_norm forward and backward kernels.

``batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps)`` normalises
(N, C, ...) per channel with the batch's statistics (training) or the running ones (eval). In
training the forward also updates the running statistics in place, as torch's kernel does, so a
traced step that replays it keeps them current. The first-order rule is aten's backward kernel;
the reference rule, made of tapegrad ops, gives higher orders and is tested to agree with it.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import primitive

__all__ = ["batch_norm"]

_FORWARD: Any = torch.ops.aten.native_batch_norm.default._op
_BACKWARD: Any = torch.ops.aten.native_batch_norm_backward.default._op


def _dims(x: Any) -> tuple[int, ...]:
    return (0, *range(2, x.dim()))


def _channel(t: Any, x: Any) -> Any:
    """A per-channel vector shaped to broadcast against (N, C, ...)."""
    return t.reshape((1, -1) + (1,) * (x.dim() - 2))


def _forward(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    running_mean: torch.Tensor | None = None,
    running_var: torch.Tensor | None = None,
    num_batches_tracked: torch.Tensor | None = None,
    training: bool = True,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    if training and num_batches_tracked is not None:
        num_batches_tracked.add_(1)
    factor = momentum
    if factor is None:  # torch's cumulative moving average
        factor = 1.0 / float(num_batches_tracked) if num_batches_tracked is not None else 0.0
    return _FORWARD(x, weight, bias, running_mean, running_var, training, factor, eps)[0]


def _saved(x: Any, running_mean: Any, running_var: Any, training: bool, eps: float) -> tuple[Any, Any]:
    """(mean, 1 / sqrt(var + eps)) per channel: the batch's in training, the running ones in eval."""
    if training:
        var, mean = torch.var_mean(x, _dims(x), correction=0)
        return mean, (var + eps).rsqrt()
    return running_mean, (running_var + eps).rsqrt()


def _fast_vjp(
    g: torch.Tensor, out: torch.Tensor, x: torch.Tensor, weight: Any, bias: Any, **p: Any
) -> tuple[Any, Any, Any]:
    training, eps = p.get("training", True), p.get("eps", 1e-5)
    rm, rv = p.get("running_mean"), p.get("running_var")
    mean, invstd = _saved(x, rm, rv, training, eps)
    mask = [True, weight is not None, bias is not None]
    return _BACKWARD(g, x, weight, rm, rv, mean, invstd, training, eps, mask)


def _vjp(g: Any, out: Any, x: Any, weight: Any, bias: Any, **p: Any) -> tuple[Any, Any, Any]:
    training, eps = p.get("training", True), p.get("eps", 1e-5)
    dims = _dims(x)
    if training:
        centered = x - x.mean(dims, keepdim=True)
        invstd = ((centered * centered).mean(dims, keepdim=True) + eps) ** -0.5
    else:
        centered = x - _channel(p["running_mean"], x)
        invstd = _channel((p["running_var"] + eps).rsqrt(), x)
    xhat = centered * invstd
    gy = g if weight is None else g * _channel(weight, x)
    if training:
        gx = (gy - gy.mean(dims, keepdim=True) - xhat * (gy * xhat).mean(dims, keepdim=True)) * invstd
    else:
        gx = gy * invstd
    gw = None if weight is None else (g * xhat).sum(dims)
    gb = None if bias is None else g.sum(dims)
    return gx, gw, gb


_batch_norm = primitive(
    "batch_norm",
    _forward,
    _vjp,
    "batch_norm(x, weight, bias, running_mean, running_var, num_batches_tracked, training, momentum, eps): "
    "per-channel normalisation of (N, C, ...) (aten's native_batch_norm; running statistics updated in training).",
    fast_vjp=_fast_vjp,
    saves=(0, 1),  # x and weight; of bias the rules ask only whether it is there
)


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    num_batches_tracked: Any = None,
) -> Any:
    """torch's ``F.batch_norm``: ``(x - mean) / sqrt(var + eps) * weight + bias`` per channel of
    (N, C, ...). ``training`` uses the batch's statistics and folds them into ``running_mean`` /
    ``running_var`` (torch tensors, updated in place; unbiased variance) with ``momentum``
    (``None``: a cumulative average counted by ``num_batches_tracked``); otherwise the running
    statistics normalise. Recorded as one primitive."""
    shape = tuple(input.shape)
    if len(shape) < 2:
        raise ShapeError(f"batch_norm: expects input (N, C, ...), got {shape} (called at {call_site()})")
    c = shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(
                f"batch_norm: {name} has shape {tuple(t.shape)}, input {shape} has {c} channels "
                f"(called at {call_site()})"
            )
    if training and shape[0] * (int(torch.tensor(shape[2:]).prod()) if len(shape) > 2 else 1) <= 1:
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, got input size {shape} "
            f"(called at {call_site()})"
        )
    stats = [getattr(t, "data", t) for t in (running_mean, running_var, num_batches_tracked)]
    return _batch_norm(
        input, weight, bias, running_mean=stats[0], running_var=stats[1], num_batches_tracked=stats[2],
        training=training, momentum=momentum, eps=eps,
    )  # fmt: skip
