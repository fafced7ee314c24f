"""torch's functional namespace (``F``) for tapegrad tensors: the same names, signatures and defaults.

``from tapegrad.nn import functional as F`` (or ``nn.functional``) and a torch model's ``F.relu``,
``F.cross_entropy``, ``F.scaled_dot_product_attention`` ... run on tapegrad ops, recorded and
differentiable. torch's own ``F.X(t)`` on a `tg.Tensor` lands here too (`tapegrad.torch_compat.interop`).
Arguments torch keeps only for compatibility (``inplace``, ``_stacklevel``) are accepted and
ignored; an option tapegrad does not implement raises `ValueError` naming it.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from tapegrad import ops
from tapegrad.engine.tensors import Tensor, wrap
from tapegrad.ops import (  # the fused primitives take torch's F signature as they are
    batch_norm,
    clamp,
    dropout,
    embedding,
    expm1,
    gelu,
    layer_norm,
    linear,
    scaled_dot_product_attention,
    sigmoid,
    softplus,
    tanh,
    where,
)
from tapegrad.torch_compat import interop

from ._functional_losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cross_entropy,
    gaussian_nll_loss,
    hinge_embedding_loss,
    huber_loss,
    kl_div,
    l1_loss,
    margin_ranking_loss,
    mse_loss,
    multilabel_soft_margin_loss,
    nll_loss,
    poisson_nll_loss,
    smooth_l1_loss,
    soft_margin_loss,
    triplet_margin_loss,
)
from ._functional_more import (
    celu,
    cosine_similarity,
    dropout1d,
    dropout2d,
    dropout3d,
    group_norm,
    hardshrink,
    hardsigmoid,
    hardswish,
    instance_norm,
    pairwise_distance,
    pixel_shuffle,
    pixel_unshuffle,
    prelu,
    rms_norm,
    selu,
    softshrink,
    softsign,
    tanhshrink,
    threshold,
)
from ._functional_spatial import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose2d,
    interpolate,
    max_pool1d,
    max_pool1d_with_indices,
    max_pool2d,
    max_pool2d_with_indices,
    pad,
    upsample,
    upsample_bilinear,
    upsample_nearest,
)
from ._where import called_at
from .layers import as_tensor

__all__ = [
    "relu", "relu6", "hardtanh", "leaky_relu", "elu", "gelu", "silu", "mish", "softplus", "sigmoid", "tanh",
    "logsigmoid", "softmax", "log_softmax", "softmin", "glu", "normalize", "linear", "dropout", "layer_norm",
    "embedding", "one_hot", "scaled_dot_product_attention",
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div",
    "conv1d", "conv2d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "adaptive_avg_pool2d", "pad", "interpolate",
    "batch_norm", "group_norm", "rms_norm", "selu", "celu", "hardswish", "hardsigmoid", "softsign", "tanhshrink",
    "threshold", "cosine_similarity", "pairwise_distance", "pixel_shuffle", "pixel_unshuffle",
    "hardshrink", "softshrink", "prelu", "instance_norm", "dropout1d", "dropout2d", "dropout3d",
    "adaptive_avg_pool1d", "max_pool1d_with_indices", "max_pool2d_with_indices", "upsample", "upsample_nearest",
    "upsample_bilinear", "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
    "multilabel_soft_margin_loss", "cosine_embedding_loss", "poisson_nll_loss", "gaussian_nll_loss",
    "triplet_margin_loss",
]  # fmt: skip


def relu(input: Any, inplace: bool = False) -> Any:
    """max(x, 0)."""
    return ops.relu(input)


def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Any:
    """x where x > 0, else negative_slope * x."""
    return ops.leaky_relu(input, negative_slope)


def relu6(input: Any, inplace: bool = False) -> Any:
    """min(max(x, 0), 6)."""
    return clamp(input, 0.0, 6.0)


def hardtanh(input: Any, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Any:
    """x clamped to [min_val, max_val]."""
    return clamp(input, min_val, max_val)


def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Any:
    """x where x > 0, else alpha * (exp(x) - 1)."""
    x = as_tensor(input, "elu")
    return where(x.data > 0, x, expm1(x) * alpha)


def silu(input: Any, inplace: bool = False) -> Any:
    """x * sigmoid(x) (swish)."""
    return input * sigmoid(input)


def mish(input: Any, inplace: bool = False) -> Any:
    """x * tanh(softplus(x))."""
    return input * tanh(softplus(input))


def logsigmoid(input: Any) -> Any:
    """log(sigmoid(x)) = -softplus(-x), stable for large abs(x)."""
    return -softplus(-input)


def _softmax_dim(input: Any, dim: int | None) -> int:
    # torch's legacy choice when dim is None (with a deprecation warning there)
    return dim if dim is not None else (0 if input.ndim in (0, 1, 3) else 1)


def softmax(input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: torch.dtype | None = None) -> Any:
    """exp(x) / sum(exp(x)) along ``dim`` (cast to ``dtype`` first when given)."""
    return ops.softmax(input, _softmax_dim(input, dim), dtype)


def log_softmax(input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: torch.dtype | None = None) -> Any:
    """log(softmax(x)) along ``dim``, computed stably."""
    return ops.log_softmax(input, _softmax_dim(input, dim), dtype)


def softmin(input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: torch.dtype | None = None) -> Any:
    """softmax(-x) along ``dim``."""
    return ops.softmax(-as_tensor(input, "softmin"), _softmax_dim(input, dim), dtype)


def glu(input: Any, dim: int = -1) -> Any:
    """a * sigmoid(b) for the two halves a, b of ``input`` along ``dim``."""
    x = as_tensor(input, "glu")
    n = x.shape[dim]
    if n % 2:
        raise ValueError(f"glu: dimension {dim} of input {tuple(x.shape)} must have an even size{called_at()}")
    return _half(x, dim, 0, n // 2) * sigmoid(_half(x, dim, n // 2, n))


def _half(x: Any, dim: int, start: int, stop: int) -> Any:
    idx = [slice(None)] * x.ndim
    idx[dim] = slice(start, stop)
    return x[tuple(idx)]


def normalize(input: Any, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Any = None) -> Any:
    """x / max(norm_p(x along dim), eps)."""
    return input / clamp(ops.norm(input, p, dim, keepdim=True), min=eps)


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """Integer class indices as one-hot int64 rows (not differentiable)."""
    data = tensor.data if isinstance(tensor, Tensor) else torch.as_tensor(tensor)
    return wrap(_one_hot(data, num_classes))


def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    if labels.dtype is not torch.long:
        raise TypeError(f"one_hot: indices must be an int64 tensor, got {labels.dtype}{called_at()}")
    n = int(labels.max()) + 1 if num_classes < 0 and labels.numel() else max(num_classes, 0)
    out = torch.zeros((*labels.shape, n), dtype=torch.long, device=labels.device)
    return out.scatter_(-1, labels.unsqueeze(-1), 1)


interop.register_namespace("functional", sys.modules[__name__])
