"""torch's ``torch.nn.functional`` (``F``) for tapegrad tensors: the same names, signatures and defaults.

``from tapegrad.nn import functional as F`` (or ``nn.functional``) and a torch model's ``F.relu``,
``F.cross_entropy``, ``F.scaled_dot_product_attention`` ... run on tapegrad ops, recorded and
differentiable. ``torch.nn.functional.X(t)`` on a `tg.Tensor` lands here too (`tapegrad.interop`).
Arguments torch keeps only for compatibility (``inplace``, ``_stacklevel``) are accepted and
ignored; an option tapegrad does not implement raises `ValueError` naming it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch

from tapegrad import interop, ops
from tapegrad.ops import (
    batch_norm,
    clamp,
    dropout,
    expm1,
    gelu,
    linear,
    sigmoid,
    softplus,
    tanh,
    where,
)
from tapegrad.tensor import Tensor, wrap

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


def _cast(input: Any, dtype: torch.dtype | None) -> Any:
    return input if dtype is None else as_tensor(input).to(dtype)


def softmax(input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: torch.dtype | None = None) -> Any:
    """exp(x) / sum(exp(x)) along ``dim`` (cast to ``dtype`` first when given)."""
    return ops.softmax(_cast(input, dtype), dim=_softmax_dim(input, dim))


def log_softmax(input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: torch.dtype | None = None) -> Any:
    """log(softmax(x)) along ``dim``, computed stably."""
    return ops.log_softmax(_cast(input, dtype), dim=_softmax_dim(input, dim))


def softmin(input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: torch.dtype | None = None) -> Any:
    """softmax(-x) along ``dim``."""
    return ops.softmax(-_cast(input, dtype), dim=_softmax_dim(input, dim))


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


def layer_norm(input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
    """(x - mean) / sqrt(var + eps) over the last ``len(normalized_shape)`` dimensions, then * weight + bias."""
    x = as_tensor(input, "layer_norm")
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape) :]) != shape:
        raise ValueError(f"layer_norm: input {tuple(x.shape)} does not end in normalized_shape {shape}{called_at()}")
    dims = tuple(range(-len(shape), 0))
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True, correction=0)
    out = (x - mean) / (var + eps).sqrt()
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def embedding(
    input: Any,
    weight: Any,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Any:
    """The rows of ``weight`` at the integer indices ``input``; the ``padding_idx`` row gets no gradient."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise ValueError(f"embedding: max_norm, scale_grad_by_freq and sparse are not supported{called_at()}")
    idx = input.data if isinstance(input, Tensor) else torch.as_tensor(input)
    if idx.is_floating_point() or idx.dtype is torch.bool:
        raise TypeError(f"embedding: indices must be an integer tensor, got {idx.dtype}{called_at()}")
    w = as_tensor(weight, "embedding", "weight")
    out = w[idx]
    if padding_idx is None:
        return out
    padded = (idx == padding_idx % w.shape[0]).unsqueeze(-1).expand(out.shape)
    return where(padded, wrap(out.data), out)


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


def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Any:
    """softmax(q @ k^T * scale + mask) @ v over (..., L, E) queries and (..., S, E) keys, as torch's.

    ``is_causal`` masks the upper triangle; a bool ``attn_mask`` keeps where it holds, a float one
    is added to the scores. ``scale`` defaults to 1 / sqrt(E).
    """
    q, k, v = (
        as_tensor(t, "scaled_dot_product_attention", n) for t, n in ((query, "query"), (key, "key"), (value, "value"))
    )
    if enable_gqa and q.shape[-3] != k.shape[-3]:
        raise ValueError(f"scaled_dot_product_attention: enable_gqa with fewer key heads is not supported{called_at()}")
    factor = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * factor
    length, source = q.shape[-2], k.shape[-2]
    if is_causal:
        keep = torch.ones(length, source, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, Tensor) else torch.as_tensor(attn_mask)
        if mask.dtype is torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + (attn_mask if isinstance(attn_mask, Tensor) else wrap(mask.to(q.dtype)))
    weights = ops.softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p)
    return weights @ v


interop.register_namespace("functional", sys.modules[__name__])
