"""embedding and its adjoint embedding_backward, each the other's VJP (any order), on torch's kernels.

``embedding(indices, weight)`` picks rows of ``weight`` (aten ``embedding``); its gradient for the
weight is ``embedding_backward(g, indices)``: the rows of ``g`` added up per index (aten
``embedding_dense_backward``), nothing for ``padding_idx``, divided by each index's count with
``scale_grad_by_freq``. That op is linear in ``g``, and its own VJP picks rows again.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import Primitive, primitive
from ._operands import raw

__all__ = ["embedding", "embedding_backward"]

_A = torch.ops.aten
_EMBEDDING: Any = torch.embedding  # aten's binding, not an OpOverload (see ops/normalization.py)
_EMBEDDING_BACKWARD: Any = _A.embedding_dense_backward.default._op


def _row_scale(indices: torch.Tensor, padding_idx: int, scale_grad_by_freq: bool, like: torch.Tensor) -> Any:
    """Per picked row, what embedding_backward multiplies it by: 0 for padding, 1 / count with freq scaling."""
    scale = torch.ones(indices.shape, dtype=like.dtype, device=like.device)
    if scale_grad_by_freq:
        counts = torch.bincount(indices.reshape(-1)).to(like.dtype)
        scale = scale / counts[indices]
    if padding_idx >= 0:
        scale = scale.masked_fill(indices == padding_idx, 0.0)
    return scale.unsqueeze(-1)


def _backward_vjp(
    gg: Any,
    out: Any,
    g: Any,
    indices: torch.Tensor,
    num_weights: int,
    padding_idx: int = -1,
    scale_grad_by_freq: bool = False,
) -> Any:
    rows = _embedding(indices, gg, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq)
    if padding_idx < 0 and not scale_grad_by_freq:
        return rows
    return rows * _row_scale(indices, padding_idx, scale_grad_by_freq, raw(gg))


embedding_backward: Primitive = primitive(
    "embedding_backward",
    lambda g, indices, num_weights, padding_idx=-1, scale_grad_by_freq=False: _EMBEDDING_BACKWARD(
        g, indices, num_weights, padding_idx, scale_grad_by_freq
    ),
    [_backward_vjp, None],
    "embedding_backward(g, indices, num_weights, padding_idx, scale_grad_by_freq): the rows of g added up "
    "per index into a (num_weights, dim) table (the weight's gradient of embedding).",
    saves=(1,),  # linear in g: its VJP reads the indices only
)
_embedding = primitive(
    "embedding",
    lambda indices, w, padding_idx=-1, scale_grad_by_freq=False: _EMBEDDING(w, indices, padding_idx),
    [
        None,
        lambda g, out, indices, w, padding_idx=-1, scale_grad_by_freq=False: embedding_backward(
            g, indices, num_weights=w.shape[0], padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq
        ),
    ],
    "embedding(indices, weight, padding_idx, scale_grad_by_freq): the rows of weight at integer indices, "
    "shape (*indices.shape, dim); the padding row gets no gradient.",
    saves=(0,),  # the indices (and the weight's shape only)
)


def embedding(
    input: Any,
    weight: Any,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Any:
    """The rows of ``weight`` (num_embeddings, dim) at the integer ``input`` indices, as torch's embedding.

    ``padding_idx``'s row passes no gradient back; ``max_norm`` renormalises the looked-up rows of
    ``weight`` in place first (as torch does); ``scale_grad_by_freq`` divides each row's gradient
    by how often its index occurs in the batch. Sparse gradients are not supported.
    """
    w, idx = raw(weight), raw(input)
    if not isinstance(idx, torch.Tensor):
        idx = torch.as_tensor(idx, device=w.device)
    if idx.is_floating_point() or idx.is_complex() or idx.dtype is torch.bool:
        raise TypeError(f"embedding: input must hold integer indices, got {idx.dtype} (called at {call_site()})")
    if w.dim() != 2:
        raise ShapeError(
            f"embedding: weight must be a (num_embeddings, dim) table, got {tuple(w.shape)} (called at {call_site()})"
        )
    if sparse:
        raise ValueError(f"embedding: sparse gradients are not supported (called at {call_site()})")
    params: dict[str, Any] = {}
    if padding_idx is not None:
        if not -w.shape[0] <= padding_idx < w.shape[0]:
            raise ValueError(
                f"embedding: padding_idx must lie within num_embeddings={w.shape[0]}, got {padding_idx} "
                f"(called at {call_site()})"
            )
        params["padding_idx"] = padding_idx % w.shape[0]
    if scale_grad_by_freq:
        params["scale_grad_by_freq"] = True
    if max_norm is not None:
        torch.embedding_renorm_(w, idx.contiguous(), max_norm, norm_type)
    return _embedding(idx, weight, **params)
