"""cross_entropy as one record: torch's ``cross_entropy_loss`` forward (log_softmax and nll_loss) and,
for class indices, torch's ``nll_loss_backward`` and ``_log_softmax_backward_data`` as its gradient.

Targets are class indices (with ``ignore_index``, class ``weight`` and ``label_smoothing``) or class
probabilities (differentiable). The reference VJP, written with ops that torch and tapegrad
tensors share, serves higher order; the fast one runs torch's backward kernels.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import primitive
from ..engine.tensors import Tensor
from ._operands import raw

__all__ = ["cross_entropy"]

_A = torch.ops.aten
_CROSS_ENTROPY: Any = torch._C._nn.cross_entropy_loss  # aten's binding, not an OpOverload (ops/normalization.py)
_NLL_FORWARD: Any = _A.nll_loss_forward.default._op
_NLL_BACKWARD: Any = _A.nll_loss_backward.default._op
_LOG_SOFTMAX_BACKWARD: Any = torch._log_softmax_backward_data
_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def _options(
    weight: torch.Tensor | None = None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0
) -> tuple[torch.Tensor | None, int, str, float]:
    """A record's params with torch's defaults (the front end records only those that differ)."""
    return weight, ignore_index, reduction, label_smoothing


def _forward(x: torch.Tensor, target: torch.Tensor, **params: Any) -> torch.Tensor:
    weight, ignore_index, reduction, label_smoothing = _options(**params)
    return _CROSS_ENTROPY(x, target, weight, _REDUCTIONS[reduction], ignore_index, label_smoothing)


def _class_view(v: torch.Tensor, x: Any) -> torch.Tensor:
    """A per-class vector shaped to broadcast along x's class dimension (1, or 0 for one sample)."""
    return v.reshape([-1] + [1] * (x.ndim - 2)) if x.ndim > 1 else v


def _upstream(g: Any, x: Any, reduction: str, total: Any) -> Any:
    """The upstream gradient shaped to broadcast over x's elements (divided by ``total`` for a mean)."""
    if reduction == "none":
        return g.unsqueeze(1 if x.ndim > 1 else 0)
    return g / total if reduction == "mean" else g


def _index_rule(
    g: Any, out: Any, x: Any, target: Any, weight: Any, ignore_index: int, reduction: str, eps: float
) -> Any:
    """d loss / d x = k * (softmax(x) * sum_c(A) - A): A constant (the targets' weights), k from g."""
    cdim = 1 if x.ndim > 1 else 0
    t = raw(target).unsqueeze(cdim)
    counted = t != ignore_index
    safe = t.masked_fill(~counted, 0)
    xd = raw(x)
    picked = counted.to(xd.dtype) if weight is None else weight[safe] * counted
    a = torch.zeros_like(xd).scatter_(cdim, safe, picked * (1 - eps) if eps else picked)
    if eps:
        w = torch.ones(xd.shape[cdim], dtype=xd.dtype, device=xd.device) if weight is None else weight
        a = a + counted * _class_view(w * (eps / xd.shape[cdim]), xd)
    k = _upstream(g, x, reduction, picked.sum())
    return (x.softmax(cdim) * a.sum(cdim, keepdim=True) - a) * k


def _probs_rule(g: Any, out: Any, x: Any, q: Any, weight: Any, reduction: str, eps: float) -> tuple[Any, Any]:
    """loss = -sum_c(w_c * q'_c * logp_c), q' = q (1 - eps) + eps / C: the gradients of x and q."""
    cdim = 1 if x.ndim > 1 else 0
    classes = raw(x).shape[cdim]
    smoothed = q * (1 - eps) + eps / classes if eps else q
    k = _upstream(g, x, reduction, raw(x).numel() // classes if x.ndim > 1 else 1)
    wq = smoothed if weight is None else smoothed * _class_view(weight, raw(x))
    gx = (x.softmax(cdim) * wq.sum(cdim, keepdim=True) - wq) * k
    logp = x.log_softmax(cdim)
    gq = -(logp if weight is None else logp * _class_view(weight, raw(x))) * k
    return gx, gq * (1 - eps) if eps else gq


def _vjp(g: Any, out: Any, x: Any, target: Any, **params: Any) -> tuple[Any, Any]:
    weight, ignore_index, reduction, label_smoothing = _options(**params)
    if raw(target).is_floating_point():
        return _probs_rule(g, out, x, target, weight, reduction, label_smoothing)
    return _index_rule(g, out, x, target, weight, ignore_index, reduction, label_smoothing), None


def _plain(x: torch.Tensor, target: torch.Tensor, label_smoothing: float) -> bool:
    """Whether torch's two backward kernels apply: (N, C) or (C,) scores, class indices, no smoothing."""
    return x.ndim <= 2 and not target.is_floating_point() and not label_smoothing


def _residuals(x: torch.Tensor, target: torch.Tensor, **params: Any) -> tuple[torch.Tensor, tuple]:
    """The loss and nll_loss's total weight, which the backward kernel reads (the kernels cross_entropy_loss
    runs for (N, C) scores and class indices). Not the log-probabilities: the record keeps the scores
    (the reference rule reads them), and keeping both would hold twice torch's bytes for this op."""
    weight, ignore_index, reduction, label_smoothing = _options(**params)
    if not _plain(x, target, label_smoothing):
        return _forward(x, target, **params), ()
    logp = torch.log_softmax(x, x.ndim - 1)
    out, total = _NLL_FORWARD(logp, target, weight, _REDUCTIONS[reduction], ignore_index)
    return out, (total,)


def _fast_vjp(g: torch.Tensor, out: torch.Tensor, x: Any, target: torch.Tensor, *saved: Any, **params: Any) -> tuple:
    weight, ignore_index, reduction, label_smoothing = _options(**params)
    if not _plain(x, target, label_smoothing):
        return _vjp(g, out, x, target, **params)
    # torch's own backward: the log-probabilities again, then its two kernels
    red = _REDUCTIONS[reduction]
    logp = torch.log_softmax(x, x.ndim - 1)
    # nll_loss's total weight as the forward kept it, or again (a record from the forward alone: tg.trace)
    total = saved[0] if saved else _NLL_FORWARD(logp, target, weight, red, ignore_index)[1]
    g_logp = _NLL_BACKWARD(g, logp, target, weight, red, ignore_index, total)
    return _LOG_SOFTMAX_BACKWARD(g_logp, logp, x.ndim - 1, x.dtype), None


_cross_entropy = primitive(
    "cross_entropy",
    _forward,
    _vjp,
    "cross_entropy(x, target, weight, ignore_index, reduction, label_smoothing): torch's cross-entropy "
    "of scores (N, C, ...) or (C,) against class indices or class probabilities, in one record.",
    fast_vjp=_fast_vjp,
    saves=(0, 1),  # the scores and a probability target; class indices are kept as constants
    residuals=_residuals,  # and nll_loss's total weight, as torch keeps it
)


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Any:
    """torch's cross_entropy of scores ``input`` (N, C, d1, ...) or (C,) against class indices (N, d1, ...)
    or class probabilities (input's shape), in one record; ``weight`` (C,) is a constant per class.

    ``size_average`` and ``reduce`` are torch's deprecated arguments, accepted for its signature
    (they override ``reduction`` as torch's legacy rule does).
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be 'none', 'mean' or 'sum', got {reduction!r}{_at()}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got {label_smoothing!r}{_at()}")
    x = raw(input)
    if x.ndim == 0:
        raise ShapeError(f"cross_entropy: input must have shape (N, C, ...) or (C,), got (){_at()}")
    classes = x.shape[1] if x.ndim > 1 else x.shape[0]
    w = raw(weight)
    if w is not None:
        w = torch.as_tensor(w)
        if tuple(w.shape) != (classes,):
            raise ShapeError(
                f"cross_entropy: weight {tuple(w.shape)} must have shape ({classes},), one per class{_at()}"
            )
        if w.dtype is not x.dtype:
            w = w.to(x.dtype)
    t = target if isinstance(target, Tensor) else torch.as_tensor(target, device=x.device)
    if raw(t).is_floating_point():
        if tuple(raw(t).shape) != tuple(x.shape):
            raise ShapeError(
                f"cross_entropy: probability target {tuple(raw(t).shape)} must have the input's shape "
                f"{tuple(x.shape)}{_at()}"
            )
    else:
        t = _check_indices(raw(t), x, classes, ignore_index)
    # only the arguments that differ from the defaults: the record (and its label in a graph) stays short
    params: dict[str, Any] = {} if w is None else {"weight": w}
    if ignore_index != -100:
        params["ignore_index"] = ignore_index
    if reduction != "mean":
        params["reduction"] = reduction
    if label_smoothing:
        params["label_smoothing"] = label_smoothing
    return _cross_entropy(input, t, **params)


def _check_indices(t: torch.Tensor, x: torch.Tensor, classes: int, ignore_index: int) -> torch.Tensor:
    expected = (x.shape[0], *x.shape[2:]) if x.ndim > 1 else ()
    if tuple(t.shape) != expected:
        raise ShapeError(
            f"cross_entropy: class indices {tuple(t.shape)} must have shape {expected} for input "
            f"{tuple(x.shape)}{_at()}"
        )
    if t.dtype is torch.bool or t.is_complex():
        raise TypeError(
            f"cross_entropy: target must hold class indices (integers) or probabilities, got {t.dtype}{_at()}"
        )
    # values out of range: torch's nll_loss kernel raises, and the record names op, shapes and call site
    return t if t.dtype is torch.long else t.long()


def legacy_reduction(size_average: Any, reduce: Any, reduction: str) -> str:
    """torch's legacy rule: ``size_average`` / ``reduce``, when either is given, decide the reduction
    (``reduce=False``: "none"; else ``size_average=False``: "sum"; else "mean")."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is not None and not reduce:
        return "none"
    return "sum" if size_average is not None and not size_average else "mean"


def _at() -> str:
    return f" (called at {call_site()})"
