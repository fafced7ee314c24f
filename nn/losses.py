"""Losses with torch's ``reduction`` argument: MSE, L1 (mean absolute error) and cross-entropy.

A target is a tensor of the input's shape (regression; tg or torch) or, for classification,
integer class indices (tg or torch). MSE and L1 turn class indices into +-1 targets
(`signed_targets`); cross-entropy takes them as torch's does.
"""

from __future__ import annotations

from typing import Any

import torch

from tapegrad.engine.errors import IndexShapeError, ShapeError
from tapegrad.engine.primitives import primitive
from tapegrad.engine.tensors import Tensor, wrap
from tapegrad.ops import cross_entropy
from tapegrad.ops.losses import legacy_reduction

from ._where import called_at, layer_name
from .layers import as_tensor
from .module import Module
from .nll import class_weights
from .validation import tensor_arg

__all__ = ["MSELoss", "L1Loss", "MAELoss", "CrossEntropyLoss", "signed_targets", "is_class_indices"]

# "batchmean" is the sum divided by the batch size (torch's name for it in KLDivLoss): for MSE
# on (N, C) rows it is (1/N) * sum_i ||input_i - target_i||^2.
_REDUCTIONS = ("mean", "sum", "none", "batchmean")


def is_class_indices(target: Any) -> bool:
    """Whether ``target`` holds integer class labels (a tg or torch integer tensor)."""
    data = target.data if isinstance(target, Tensor) else target
    return isinstance(data, torch.Tensor) and not (data.is_floating_point() or data.is_complex())


def signed_targets(labels: Any, num_classes: int = 2, dtype: torch.dtype | None = None) -> Tensor:
    """Class labels (n,) as +-1 rows (n, num_classes): +1 at the label, -1 elsewhere.

    Label 0 of two classes becomes [1, -1] and label 1 becomes [-1, 1].
    """
    data = labels.data if isinstance(labels, Tensor) else torch.as_tensor(labels)
    _check_labels(data, num_classes)
    return wrap(_signed(data, num_classes, dtype or torch.get_default_dtype()))


def _signed(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.full((*labels.shape, num_classes), -1.0, dtype=dtype, device=labels.device)
    return out.scatter_(-1, labels.long().unsqueeze(-1), 1.0)


def _target_of(x: Any, y: Any) -> Any:
    # Class labels become +-1 rows inside the loss's own op (not before it), so that the op's
    # record holds the labels themselves and `tg.trace` replays the conversion for new batches.
    # Raw torch in the forward and fast VJPs; tg.Tensors in the reference VJPs (higher order).
    labels = y.data if isinstance(y, Tensor) else y
    if labels.is_floating_point() or labels.is_complex():
        return y
    like = x.data if isinstance(x, Tensor) else x
    rows = _signed(labels, like.shape[-1], like.dtype)
    return wrap(rows) if isinstance(x, Tensor) else rows


def _check_labels(labels: torch.Tensor, num_classes: int) -> None:
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"class labels must be an integer tensor, got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"class labels must lie in [0, {num_classes - 1}], got values in [{int(labels.min())}, {int(labels.max())}]"
        )


def _reduce(loss: Any, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "batchmean":
        return loss.sum() / (loss.shape[0] if loss.ndim else 1)
    return loss


# The aten kernels: one op each way instead of three (sub, pow, mean; sub, two products). The forward
# through its generated binding (torch.ops' schema-driven call costs about a third of a small loss's
# time), the backward (which has no binding) through the operator handle, without OpOverload's frame.
_MSE: Any = torch._C._nn.mse_loss  # (Any: torch's stub types the reduction as str; the binding takes the int)
_MEAN = 1  # aten's Reduction::Mean
_MSE_BACKWARD = torch.ops.aten.mse_loss_backward.default._op


# ``scale`` rescales the mean inside the record ("batchmean" is the mean times C): one record, not two
def _mse(x: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    out = _MSE(x, y if y.is_floating_point() else _target_of(x, y), _MEAN)
    return out if scale == 1.0 else out * scale


def _mse_input(g: Any, out: Any, x: Any, y: Any, scale: float = 1.0) -> Any:
    y = _target_of(x, y)
    g = g if scale == 1.0 else g * scale
    return (x - y) * (g * (2.0 / max(x.numel(), 1)))


def _mse_target(g: Any, out: Any, x: Any, y: Any, scale: float = 1.0) -> Any:
    g = g if scale == 1.0 else g * scale
    return (y - x) * (g * (2.0 / max(x.numel(), 1)))


def _fast_mse_input(g: torch.Tensor, out: Any, x: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> Any:
    if not y.is_floating_point():
        y = _target_of(x, y)
    if x.shape == y.shape and x.dtype == y.dtype:  # the aten kernel takes no broadcasting
        return _MSE_BACKWARD(g if scale == 1.0 else g * scale, x, y, _MEAN)
    return _mse_input(g, out, x, y, scale)


def _fast_mse_target(g: torch.Tensor, out: Any, x: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> Any:
    if x.shape == y.shape and x.dtype == y.dtype:
        return _MSE_BACKWARD(g if scale == 1.0 else g * scale, y, x, _MEAN)
    return _mse_target(g, out, x, y, scale)


# input - target where the target may be class labels (+-1 rows): L1 and the other reductions
def _sub_signed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x - _target_of(x, y)


def _sub_signed_input(g: torch.Tensor, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return g


sub_signed = primitive(
    "sub_signed",
    _sub_signed,
    [_sub_signed_input, None],
    "sub_signed(input, labels): input minus the labels as +-1 rows (the labels are not differentiable).",
    saves=(),
)

# Fused for speed: one record instead of sub, pow and mean (and their three replays).
mse_loss = primitive(
    "mse_loss",
    _mse,  # broadcasts and promotes as mean((x - y)**2); the mean reduction is the default
    [_mse_input, _mse_target],
    "mse_loss(input, target, scale=1.0): scale * mean((input - target)**2), one record (nn.MSELoss's mean\n"
    "and batchmean reductions).",
    fast_vjp=[_fast_mse_input, _fast_mse_target],
    saves=(0, 1),
)


class _Loss(Module):
    def __init__(self, reduction: str = "mean", size_average: Any = None, reduce: Any = None) -> None:
        super().__init__()
        reduction = legacy_reduction(size_average, reduce, reduction)  # torch's deprecated arguments decide
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class _Elementwise(_Loss):
    def _diff(self, input: Any, target: Any) -> Any:
        input, target = self._operands(input, target)
        return sub_signed(input, target) if is_class_indices(target) else input - target

    def _operands(self, input: Any, target: Any) -> tuple[Tensor, Tensor]:
        if input.__class__ is Tensor and target.__class__ is Tensor:  # the training loop's case, checked first
            data = target.data
            if data.is_floating_point() and data.shape == input.data.shape:
                return input, target
        input = as_tensor(input, type(self).__name__, "input")
        if is_class_indices(target) and input.ndim >= 1 and target.ndim == input.ndim - 1:
            _check_labels(target.data if isinstance(target, Tensor) else target, input.shape[-1])
            return input, target  # the loss's op makes the +-1 rows (`_target_of`)
        if isinstance(target, Tensor):
            pass
        elif isinstance(target, torch.Tensor):
            target = wrap(target.to(input.dtype))
        else:
            target = tensor_arg(type(self).__name__, "target", target, input.dtype, input.device)
        if target.data.shape != input.data.shape:
            raise ShapeError(
                f"{type(self).__name__}: target shape {tuple(target.shape)} differs from input shape "
                f"{tuple(input.shape)} (pass class indices of shape {tuple(input.shape[:-1])} or targets of the "
                "input's shape)"
            )
        return input, target


class MSELoss(_Elementwise):
    """Mean squared error, ``(input - target)**2`` reduced; class indices become +-1 targets.

    ``reduction`` is torch's (``"mean"`` over every element, ``"sum"``, ``"none"``) or
    ``"batchmean"``: the sum divided by the batch size, as torch's KLDivLoss names it, which is
    ``(1/N) * sum_i ||input_i - target_i||^2`` for rows of C outputs (C times ``"mean"``).
    """

    def forward(self, input: Any, target: Any) -> Tensor:
        """The loss of ``input`` against ``target``."""
        if self.reduction == "mean":  # the training loss: one record, a three-op VJP
            return mse_loss(*self._operands(input, target))
        if self.reduction == "batchmean":  # sum / N: the fused mean rescaled in the same record
            input, target = self._operands(input, target)
            rows = input.shape[0] if input.ndim else 1
            return mse_loss(input, target, scale=max(input.numel(), 1) / max(rows, 1))
        d = self._diff(input, target)
        return _reduce(d**2, self.reduction)  # pow's VJP is one op less than d * d's (same values)


class L1Loss(_Elementwise):
    """Mean absolute error, ``|input - target|`` reduced."""

    def forward(self, input: Any, target: Any) -> Tensor:
        """The loss of ``input`` against ``target``."""
        return _reduce(self._diff(input, target).abs(), self.reduction)


MAELoss = L1Loss


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits (n, C) or (n, C, d1, ...) against class indices or class probabilities.

    Computed as ``-log_softmax(input)[i, target[i]]`` (numerically stable), as torch's; ``weight``
    (one per class), ``ignore_index`` and ``label_smoothing`` follow torch's definitions.
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction, size_average, reduce)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must lie in [0, 1], got {label_smoothing!r}")
        self.weight = class_weights(weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Any, target: Any) -> Tensor:
        """The loss of logits ``input`` against ``target``: one fused record (`tg.cross_entropy`)."""
        input = as_tensor(input, "CrossEntropyLoss", "input")
        if input.ndim == 0:
            raise ShapeError("CrossEntropyLoss expects logits of shape (n, classes) or (classes,), got shape ()")
        if is_class_indices(target):
            t = target.data if isinstance(target, Tensor) else target
            expected = (input.shape[0], *input.shape[2:]) if input.ndim > 1 else ()
            if tuple(t.shape) != expected:
                raise ShapeError(f"CrossEntropyLoss: class indices must have shape {expected}, got {tuple(t.shape)}")
        else:
            t = as_tensor(target, "CrossEntropyLoss", "target")
            if tuple(t.shape) != tuple(input.shape):
                raise ShapeError(
                    f"CrossEntropyLoss: probability targets must have the input's shape {tuple(input.shape)}, "
                    f"got {tuple(t.shape)}"
                )
        batchmean = self.reduction == "batchmean"
        try:
            loss = cross_entropy(
                input, t, self.weight, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
                reduction="sum" if batchmean else self.reduction,
            )  # fmt: skip
        except IndexShapeError:  # a class index out of range: name the range (only now, no sync per step)
            _check_class_range(t, input.shape[1] if input.ndim > 1 else input.shape[0], self.ignore_index)
            raise
        return loss / (input.shape[0] if input.ndim > 1 else 1) if batchmean else loss


def _check_class_range(labels: torch.Tensor, classes: int, ignore_index: int) -> None:
    counted = labels[labels != ignore_index]
    if counted.numel() and (int(counted.min()) < 0 or int(counted.max()) >= classes):
        raise IndexShapeError(
            f"{layer_name('CrossEntropyLoss')}: class indices must lie in [0, {classes - 1}] (or equal "
            f"ignore_index={ignore_index}), got values in [{int(counted.min())}, {int(counted.max())}]{called_at()}"
        )
