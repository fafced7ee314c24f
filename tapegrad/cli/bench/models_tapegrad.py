"""The char-level language models of `tapegrad bench --only models`, in tapegrad (`models`).

Each model maps a (batch, context) tensor of character indices to next-character scores. The
parameter names match the torch.nn twins in `models_torch`, so that both start from the same
weights.
"""

from __future__ import annotations

from typing import Any

import torch

import tapegrad as tg
import tapegrad.nn as nn

__all__ = ["MLP", "GRULM", "LSTMLM", "Transformer"]


class MLP(nn.Module):
    """Embed the context, flatten it, one hidden tanh layer, scores for the next character."""

    def __init__(self, vocab: int, context: int, emb: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.hidden = nn.Linear(context * emb, hidden)
        self.act = nn.Tanh()
        self.out = nn.Linear(hidden, vocab)

    def forward(self, idx: Any) -> Any:
        """(B, T) indices -> (B, vocab) scores for the character after the context."""
        x = self.emb(idx)
        return self.out(self.act(self.hidden(x.reshape(x.shape[0], -1))))


class RecurrentLM(nn.Module):
    """Embedding, a recurrent layer (``layer``: nn.GRU or nn.LSTM), scores for the next character at every position."""

    def __init__(self, vocab: int, emb: int = 32, hidden: int = 64, layer: Any = nn.GRU) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.rnn = layer(emb, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, idx: Any) -> Any:
        """(B, T) -> (B * T, vocab)."""
        h = self.out(self.rnn(self.emb(idx))[0])
        return h.reshape(-1, h.shape[-1])


class GRULM(RecurrentLM):
    """Embedding, a GRU, scores for the next character at every position."""


class LSTMLM(RecurrentLM):
    """Embedding, an LSTM, scores for the next character at every position (the GRU row's shape)."""

    def __init__(self, vocab: int, emb: int = 32, hidden: int = 64) -> None:
        super().__init__(vocab, emb, hidden, nn.LSTM)


class Attention(nn.Module):
    """Causal multi-head self-attention through scaled_dot_product_attention (torch's CPU flash kernel)."""

    def __init__(self, emb: int, heads: int, context: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(emb, 3 * emb)
        self.proj = nn.Linear(emb, emb)

    def forward(self, x: Any) -> Any:
        """(B, T, C) -> (B, T, C)."""
        b, t, c = x.shape
        d = c // self.heads
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # one record (a multi-output primitive), where qkv[0], qkv[1], qkv[2] are three
        y = tg.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(ln(x)), then x + mlp(ln(x)) (GELU, 4x wide)."""

    def __init__(self, emb: int, heads: int, context: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(emb)
        self.attn = Attention(emb, heads, context)
        self.ln2 = nn.LayerNorm(emb)
        self.fc = nn.Linear(emb, 4 * emb)
        self.act = nn.GELU()
        self.fc_out = nn.Linear(4 * emb, emb)

    def forward(self, x: Any) -> Any:
        """(B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.ln1(x))
        return x + self.fc_out(self.act(self.fc(self.ln2(x))))


class Transformer(nn.Module):
    """Token and position embeddings, ``layers`` blocks, a final LayerNorm, scores per position."""

    def __init__(self, vocab: int, context: int, emb: int = 32, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, emb)
        self.pos = nn.Embedding(context, emb)
        self.blocks = nn.Sequential(*[Block(emb, heads, context) for _ in range(layers)])
        self.ln = nn.LayerNorm(emb)
        self.out = nn.Linear(emb, vocab)

    def forward(self, idx: Any) -> Any:
        """(B, T) -> (B * T, vocab)."""
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        h = self.out(self.ln(self.blocks(x)))
        return h.reshape(-1, h.shape[-1])
