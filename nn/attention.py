"""`MultiheadAttention` with torch's parameters (``in_proj_weight``, ``out_proj.*``, ...), masks and
shapes. Without ``need_weights`` it runs the fused `tg.scaled_dot_product_attention`; with them,
`attention` (composed of recorded ops) also returns the weights."""

from __future__ import annotations

import math
from typing import Any

import torch

from tapegrad.engine.errors import ShapeError
from tapegrad.ops import cat, dropout, linear, scaled_dot_product_attention, softmax

from . import init as _init
from ._where import called_at, layer_name
from .layers import Linear, as_tensor
from .module import Module, Parameter

__all__ = ["MultiheadAttention", "attention", "additive_mask"]


def additive_mask(mask: Any, dtype: torch.dtype) -> torch.Tensor | None:
    """A float mask to add to attention scores: a bool mask's True (not allowed) becomes -inf."""
    if mask is None:
        return None
    m = mask.data if hasattr(mask, "data") and not isinstance(mask, torch.Tensor) else mask
    m = torch.as_tensor(m)
    if m.dtype == torch.bool:
        return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill_(m, float("-inf"))
    return m.to(dtype)


def attention(q: Any, k: Any, v: Any, mask: Any = None, dropout_p: float = 0.0) -> tuple[Any, Any]:
    """softmax(q k^T / sqrt(d) + mask) v over the last two dimensions; returns (output, weights).
    ``dropout_p`` drops attention weights (training only: pass 0 in eval)."""
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores + mask
    weights = softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, training=True)
    return weights @ v, weights


class MultiheadAttention(Module):
    """torch's MultiheadAttention: ``num_heads`` heads over ``embed_dim``, with ``batch_first``,
    ``attn_mask`` ((L, S) or (N*num_heads, L, S), bool or additive float), ``key_padding_mask``
    ((N, S), True where a key is padding), ``need_weights`` (averaged over heads unless
    ``average_attn_weights=False``), ``add_bias_kv``, ``add_zero_attn``, ``kdim``/``vdim``."""

    # registered by name (None when absent): declared for type checkers
    in_proj_bias: Parameter | None
    bias_k: Parameter | None
    bias_v: Parameter | None

    def __init__(
        self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True, add_bias_kv: bool = False,
        add_zero_attn: bool = False, kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
        device: Any = None, dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                f"num_heads={num_heads} instead"
            )
        if embed_dim % num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(torch.empty(3 * embed_dim, embed_dim, **kw))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(torch.empty(embed_dim, embed_dim, **kw))
            self.k_proj_weight = Parameter(torch.empty(embed_dim, self.kdim, **kw))
            self.v_proj_weight = Parameter(torch.empty(embed_dim, self.vdim, **kw))
            self.register_parameter("in_proj_weight", None)
        self.register_parameter("in_proj_bias", Parameter(torch.empty(3 * embed_dim, **kw)) if bias else None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        for name in ("bias_k", "bias_v"):
            self.register_parameter(name, Parameter(torch.empty(1, 1, embed_dim, **kw)) if add_bias_kv else None)
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            _init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                _init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            _init.zeros_(self.in_proj_bias)
            _init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            _init.xavier_normal_(self.bias_k)
            _init.xavier_normal_(self.bias_v)

    def _projections(self, q: Any, k: Any, v: Any) -> tuple[Any, Any, Any]:
        e, b = self.embed_dim, self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e : 2 * e], b[2 * e :])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            wq, wk, wv = w[:e], w[e : 2 * e], w[2 * e :]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return linear(q, wq, bq), linear(k, wk, bk), linear(v, wv, bv)

    def _sequence_first(self, query: Any, key: Any, value: Any, key_padding_mask: Any) -> tuple[Any, ...]:
        """(q, k, v) as (L, N, E), the padding mask batched, and whether the input was unbatched."""
        q, k, v = as_tensor(query), as_tensor(key), as_tensor(value)
        unbatched = q.dim() == 2
        if q.dim() not in (2, 3) or q.shape[-1] != self.embed_dim:
            raise ShapeError(
                f"{layer_name('MultiheadAttention')}: expected query (L, N, {self.embed_dim}) (or (N, L, ...) with "
                f"batch_first, or unbatched (L, {self.embed_dim})), got {tuple(q.shape)}{called_at()}"
            )
        if unbatched:
            q, k, v = q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = torch.as_tensor(getattr(key_padding_mask, "data", key_padding_mask)).unsqueeze(0)
        elif self.batch_first:
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        return q, k, v, key_padding_mask, unbatched

    def forward(
        self, query: Any, key: Any, value: Any, key_padding_mask: Any = None, need_weights: bool = True,
        attn_mask: Any = None, average_attn_weights: bool = True, is_causal: bool = False,
    ) -> tuple[Any, Any]:  # fmt: skip
        """``(attn_output, attn_weights)``: output of the query's shape, weights (N, L, S) (per head
        (N, num_heads, L, S) without averaging) or None without ``need_weights``."""
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint. ")
        q, k, v, key_padding_mask, unbatched = self._sequence_first(query, key, value, key_padding_mask)
        tgt_len, batch, e = q.shape
        heads, hd = self.num_heads, self.head_dim
        q, k, v = self._projections(q, k, v)
        dtype = q.dtype
        mask = additive_mask(attn_mask, dtype)
        pad = additive_mask(key_padding_mask, dtype)
        if mask is not None and mask.dim() == 2:
            mask = mask.unsqueeze(0)
        if self.bias_k is not None and self.bias_v is not None:  # both or neither (add_bias_kv)
            k = cat([k, self.bias_k.expand(1, batch, e)])
            v = cat([v, self.bias_v.expand(1, batch, e)])
            mask = None if mask is None else _pad_last(mask)
            pad = None if pad is None else _pad_last(pad)
        q = q.reshape(tgt_len, batch * heads, hd).transpose(0, 1)
        k = k.reshape(k.shape[0], batch * heads, hd).transpose(0, 1)
        v = v.reshape(v.shape[0], batch * heads, hd).transpose(0, 1)
        if self.add_zero_attn:
            zeros = torch.zeros(batch * heads, 1, hd, dtype=dtype, device=q.device)
            k, v = cat([k, zeros], dim=1), cat([v, zeros], dim=1)
            mask = None if mask is None else _pad_last(mask)
            pad = None if pad is None else _pad_last(pad)
        src_len = k.shape[1]
        if pad is not None:
            pad = pad.view(batch, 1, 1, src_len).expand(-1, heads, -1, -1).reshape(batch * heads, 1, src_len)
            mask = pad if mask is None else mask + pad
        p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = attention(q, k, v, mask, p)
        else:  # torch's path too: the fused kernel on (N, heads, L, head_dim), no weights formed
            four = (batch, heads, -1, hd)
            if mask is not None:
                lead = (batch, heads) if mask.shape[0] > 1 else (1, 1)
                mask = mask.reshape(*lead, *mask.shape[-2:])
            out = scaled_dot_product_attention(q.reshape(four), k.reshape(four), v.reshape(four), mask, p)
            out, weights = out.reshape(batch * heads, tgt_len, hd), None
        out = out.transpose(0, 1).reshape(tgt_len * batch, e)
        out = self.out_proj(out).reshape(tgt_len, batch, e)
        if self.batch_first and not unbatched:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(1)
        if not need_weights:
            return out, None
        weights = weights.reshape(batch, heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(1)
        return out, weights.squeeze(0) if unbatched else weights


def _pad_last(mask: torch.Tensor) -> torch.Tensor:
    """A zero column appended to a mask's last dimension (for bias_kv and zero-attention keys)."""
    return torch.cat([mask, mask.new_zeros(*mask.shape[:-1], 1)], dim=-1)
