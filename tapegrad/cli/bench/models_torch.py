"""The torch.nn twins of `models_tapegrad` (same parameter names), and what torch keeps for backward.

The reference side of `tapegrad bench --only models`: a bench module, so it may use torch.nn and
torch.autograd (the library may not).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["MLP", "GRULM", "LSTMLM", "Transformer", "saved_bytes"]


class MLP(nn.Module):
    """See `models_tapegrad.MLP`."""

    def __init__(self, vocab: int, context: int, emb: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.hidden = nn.Linear(context * emb, hidden)
        self.act = nn.Tanh()
        self.out = nn.Linear(hidden, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) indices -> (B, vocab) scores."""
        x = self.emb(idx)
        return self.out(self.act(self.hidden(x.reshape(x.shape[0], -1))))


class RecurrentLM(nn.Module):
    """See `models_tapegrad.RecurrentLM` (torch.nn.GRU or torch.nn.LSTM here)."""

    def __init__(self, vocab: int, emb: int = 32, hidden: int = 64, layer: Any = nn.GRU) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.rnn = layer(emb, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B * T, vocab)."""
        h = self.out(self.rnn(self.emb(idx))[0])
        return h.reshape(-1, h.shape[-1])


class GRULM(RecurrentLM):
    """See `models_tapegrad.GRULM` (torch.nn.GRU here)."""


class LSTMLM(RecurrentLM):
    """See `models_tapegrad.LSTMLM` (torch.nn.LSTM here)."""

    def __init__(self, vocab: int, emb: int = 32, hidden: int = 64) -> None:
        super().__init__(vocab, emb, hidden, nn.LSTM)


class Attention(nn.Module):
    """See `models_tapegrad.Attention`."""

    def __init__(self, emb: int, heads: int, context: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(emb, 3 * emb)
        self.proj = nn.Linear(emb, emb)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        b, t, c = x.shape
        d = c // self.heads
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """See `models_tapegrad.Block`."""

    def __init__(self, emb: int, heads: int, context: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(emb)
        self.attn = Attention(emb, heads, context)
        self.ln2 = nn.LayerNorm(emb)
        self.fc = nn.Linear(emb, 4 * emb)
        self.act = nn.GELU()
        self.fc_out = nn.Linear(4 * emb, emb)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.ln1(x))
        return x + self.fc_out(self.act(self.fc(self.ln2(x))))


class Transformer(nn.Module):
    """See `models_tapegrad.Transformer`."""

    def __init__(self, vocab: int, context: int, emb: int = 32, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, emb)
        self.pos = nn.Embedding(context, emb)
        self.blocks = nn.Sequential(*[Block(emb, heads, context) for _ in range(layers)])
        self.ln = nn.LayerNorm(emb)
        self.out = nn.Linear(emb, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B * T, vocab)."""
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        h = self.out(self.ln(self.blocks(x)))
        return h.reshape(-1, h.shape[-1])


def saved_bytes(forward: Any) -> tuple[Any, int]:
    """(forward(), bytes of the distinct storages torch.autograd saved for backward while it ran)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = forward()
    return result, sum(storages.values())
