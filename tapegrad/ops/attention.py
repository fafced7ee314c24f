"""scaled_dot_product_attention: one record on torch's CPU flash-attention kernels where they apply.

The fused primitive runs aten ``_scaled_dot_product_flash_attention_for_cpu`` forward and, for
its first-order VJP, that kernel again (for the row log-sum-exps) and its backward kernel; the
reference VJP, softmax(q k^T * scale + bias) written with shared ops, serves higher order. With
``dropout_p > 0``, a mask that requires grad or shapes the kernel does not take, the front end
composes the same attention from tapegrad ops instead (matmul, softmax, dropout).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import primitive
from ..engine.tensors import Tensor
from ._operands import raw
from .activations import dropout
from .normalization import softmax

__all__ = ["scaled_dot_product_attention"]

_A = torch.ops.aten
_FLASH: Any = torch._scaled_dot_product_flash_attention_for_cpu  # aten's binding, not an OpOverload (normalization)
_FLASH_BACKWARD: Any = _A._scaled_dot_product_flash_attention_for_cpu_backward.default._op


def _as_4d(t: torch.Tensor) -> torch.Tensor:
    """(N, L, E) as (N, 1, L, E): the kernel takes (batch, heads, length, features) only."""
    return t.unsqueeze(1) if t.dim() == 3 else t


def _options(
    attn_mask: torch.Tensor | None = None, is_causal: bool = False, scale: float | None = None
) -> tuple[torch.Tensor | None, bool, float | None]:
    """A record's params with torch's defaults (the front end records only those that differ)."""
    return attn_mask, is_causal, scale


def _residuals(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **params: Any
) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
    attn_mask, is_causal, scale = _options(**params)
    if q.dim() == 3:
        out, lse = _FLASH(
            _as_4d(q), _as_4d(k), _as_4d(v), 0.0, is_causal, attn_mask=_as_4d_mask(attn_mask, q), scale=scale
        )[:2]
        return out.squeeze(1), (lse,)
    out, lse = _FLASH(q, k, v, 0.0, is_causal, attn_mask=attn_mask, scale=scale)[:2]
    return out, (lse,)


def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **params: Any) -> torch.Tensor:
    """The attention output alone (a tape that keeps everything records no residuals)."""
    return _residuals(q, k, v, **params)[0]


def _as_4d_mask(mask: torch.Tensor | None, q: torch.Tensor) -> torch.Tensor | None:
    return mask.unsqueeze(1) if mask is not None and q.dim() == 3 and mask.dim() == 3 else mask


def _fast_vjp(
    g: torch.Tensor,
    out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *saved: torch.Tensor,
    **params: Any,
) -> tuple[torch.Tensor, ...]:
    attn_mask, is_causal, scale = _options(**params)
    q4, k4, v4, mask = _as_4d(q), _as_4d(k), _as_4d(v), _as_4d_mask(attn_mask, q)
    if saved:  # the row log-sum-exps the forward kept
        out4, lse = _as_4d(out), saved[0]
    else:  # or the kernel again
        out4, lse = _FLASH(q4, k4, v4, 0.0, is_causal, attn_mask=mask, scale=scale)[:2]
    grads = _FLASH_BACKWARD(_as_4d(g), q4, k4, v4, out4, lse, 0.0, is_causal, attn_mask=mask, scale=scale)
    return tuple(t.squeeze(1) for t in grads) if q.dim() == 3 else grads


def _bias(q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor | None:
    """The additive score bias of a float mask and the causal rule (-inf above the diagonal)."""
    if not is_causal:
        return attn_mask
    length, source = q.shape[-2], k.shape[-2]
    above = torch.ones(length, source, dtype=torch.bool, device=q.device).triu(1)
    causal = torch.zeros(length, source, dtype=q.dtype, device=q.device).masked_fill(above, -math.inf)
    return causal if attn_mask is None else attn_mask + causal


def _vjp(g: Any, out: Any, q: Any, k: Any, v: Any, **params: Any) -> tuple[Any, Any, Any]:
    attn_mask, is_causal, scale = _options(**params)
    s = 1.0 / math.sqrt(raw(q).shape[-1]) if scale is None else scale
    scores = (q @ k.mT) * s
    bias = _bias(raw(q), raw(k), attn_mask, is_causal)
    p = (scores if bias is None else scores + bias).softmax(-1)
    dp = g @ v.mT
    ds = p * (dp - (dp * p).sum(-1, keepdim=True))
    return (ds @ k) * s, (ds.mT @ q) * s, p.mT @ g


_attention = primitive(
    "scaled_dot_product_attention",
    _forward,
    _vjp,
    "scaled_dot_product_attention(q, k, v, attn_mask, is_causal, scale): softmax(q k^T * scale + mask) v "
    "on torch's CPU flash-attention kernel; attn_mask is a constant float bias.",
    fast_vjp=_fast_vjp,
    saves=(0, 1, 2, "output"),  # and the row log-sum-exps (residuals), as torch keeps them
    residuals=_residuals,
)


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
    """softmax(query key^T * scale + mask) value, as torch's scaled_dot_product_attention.

    ``attn_mask`` broadcasts to (..., L, S): a bool mask keeps the scores where it holds, a float
    mask is added to them; ``is_causal`` masks the scores above the diagonal; ``scale`` defaults
    to 1/sqrt(E); ``dropout_p`` drops attention weights (from torch's generator); with
    ``enable_gqa`` key and value may have fewer heads (dimension -3) than query, each shared by a
    group of query heads. One record on torch's flash-attention kernel where it applies.
    """
    q, k, v = raw(query), raw(key), raw(value)
    qs, ks, vs = q.shape, k.shape, v.shape  # read once: each read of a torch tensor's metadata is a call into torch
    if len(qs) < 2 or len(ks) < 2 or len(vs) < 2 or qs[-1] != ks[-1] or ks[-2] != vs[-2]:
        raise ShapeError(
            f"scaled_dot_product_attention: query {tuple(q.shape)}, key {tuple(k.shape)} and value {tuple(v.shape)} "
            f"must be (..., L, E), (..., S, E) and (..., S, Ev) (called at {call_site()})"
        )
    if attn_mask is not None and is_causal:
        raise ValueError(
            f"scaled_dot_product_attention: give attn_mask or is_causal, not both, as torch (called at {call_site()})"
        )
    if enable_gqa and k.dim() >= 3 and k.shape[-3] != q.shape[-3]:
        key, value = _shared_heads(key, q.shape[-3]), _shared_heads(value, q.shape[-3])
        k, v = raw(key), raw(value)
        ks, vs = k.shape, v.shape
    mask = attn_mask
    if isinstance(mask, torch.Tensor) and mask.dtype is torch.bool:
        mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, -math.inf)
    elif isinstance(mask, torch.Tensor) and mask.dtype is not q.dtype:
        mask = mask.to(q.dtype)
    if dropout_p == 0 and _fits_kernel(q, k, v, (qs, ks, vs), mask):
        params: dict[str, Any] = {} if mask is None else {"attn_mask": mask}
        if is_causal:
            params["is_causal"] = True
        if scale is not None:
            params["scale"] = scale
        return _attention(query, key, value, **params)
    return _composed(query, key, value, mask, dropout_p, is_causal, scale)


def _fits_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shapes: tuple, mask: Any) -> bool:
    """Whether the flash kernel takes these operands, of these ``shapes`` (a tg.Tensor mask is differentiable:
    composed)."""
    qs, ks, vs = shapes
    n = len(qs)
    if isinstance(mask, Tensor) or n not in (3, 4) or not n == len(ks) == len(vs):
        return False
    dtype = q.dtype
    if k.dtype is not dtype or v.dtype is not dtype or vs[-1] != qs[-1] or not dtype.is_floating_point:
        return False
    return qs[:-2] == ks[:-2] == vs[:-2] and (mask is None or mask.dim() <= n)


def _shared_heads(t: Any, heads: int) -> Any:
    """(..., Hk, S, E) repeated to (..., heads, S, E), each head ``heads // Hk`` times in a row."""
    data = raw(t)
    groups = heads // data.shape[-3]
    if groups * data.shape[-3] != heads:
        raise ShapeError(
            f"scaled_dot_product_attention: query's {heads} heads are not a multiple of key/value's "
            f"{data.shape[-3]} (called at {call_site()})"
        )
    lead, (h, s, e) = tuple(data.shape[:-3]), tuple(data.shape[-3:])
    return t.unsqueeze(-3).expand(*lead, h, groups, s, e).reshape(*lead, heads, s, e)


def _composed(q: Any, k: Any, v: Any, mask: Any, dropout_p: float, is_causal: bool, scale: float | None) -> Any:
    """The same attention from recorded tapegrad ops (dropout on the weights; a mask with a gradient)."""
    s = 1.0 / math.sqrt(raw(q).shape[-1]) if scale is None else scale
    scores = (q @ k.mT) * s
    bias = _bias(raw(q), raw(k), None, is_causal)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores + mask
    weights = softmax(scores, -1)
    if dropout_p:
        weights = dropout(weights, dropout_p)
    return weights @ v
