"""A small GPT written as a torch user writes it (nanoGPT's shape) runs on tapegrad unchanged but for
the imports: the same source is run once with ``torch.nn`` / ``torch.nn.functional`` and once with
``tapegrad.nn`` / ``tapegrad.nn.functional``; logits, loss, every parameter's gradient and top-k
sampling agree with torch in float64."""

from __future__ import annotations

import math
import textwrap

import torch

import tapegrad as tg
import tapegrad.nn
from tapegrad.nn import functional as tg_F

# The model, verbatim torch code: causal attention through a registered tril buffer and masked_fill,
# split, transpose(...).contiguous().view(...), F.cross_entropy(ignore_index=), top-k sampling with
# item assignment and torch.multinomial.
SOURCE = textwrap.dedent(
    """
    class CausalSelfAttention(nn.Module):
        def __init__(self, n_embd, n_head, block_size):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)
            self.n_head, self.n_embd = n_head, n_embd
            tril = torch.tril(torch.ones(block_size, block_size))
            self.register_buffer("bias", tril.view(1, 1, block_size, block_size))

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)


    class MLP(nn.Module):
        def __init__(self, n_embd):
            super().__init__()
            self.c_fc = nn.Linear(n_embd, 4 * n_embd)
            self.gelu = nn.GELU()
            self.c_proj = nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))


    class Block(nn.Module):
        def __init__(self, n_embd, n_head, block_size):
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.attn = CausalSelfAttention(n_embd, n_head, block_size)
            self.ln_2 = nn.LayerNorm(n_embd)
            self.mlp = MLP(n_embd)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))


    class GPT(nn.Module):
        def __init__(self, vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8):
            super().__init__()
            self.block_size = block_size
            self.wte = nn.Embedding(vocab_size, n_embd)
            self.wpe = nn.Embedding(block_size, n_embd)
            self.h = nn.ModuleList([Block(n_embd, n_head, block_size) for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)

        def forward(self, idx, targets=None):
            b, t = idx.size()
            pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            loss = None
            if targets is not None:
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            return logits, loss

        @torch.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
            for _ in range(max_new_tokens):
                idx_cond = idx if idx.size(1) <= self.block_size else idx[:, -self.block_size :]
                logits, _ = self(idx_cond)
                logits = logits[:, -1, :] / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("Inf")
                probs = F.softmax(logits, dim=-1)
                idx_next = torch.multinomial(probs, num_samples=1)
                idx = torch.cat((idx, idx_next), dim=1)
            return idx
    """
)


def build(nn_module, functional):
    """The GPT class of SOURCE with ``nn`` and ``F`` bound to one library (the only difference)."""
    namespace = {"torch": torch, "math": math, "nn": nn_module, "F": functional}
    exec(compile(SOURCE, "gpt_port.py", "exec"), namespace)
    return namespace["GPT"]


def models():
    torch.manual_seed(0)
    theirs = build(torch.nn, torch.nn.functional)().double()
    ours = build(tapegrad.nn, tg_F)().double()
    ours.load_state_dict(theirs.state_dict())
    assert list(ours.state_dict()) == list(theirs.state_dict())  # buffers ("...attn.bias") included
    return ours, theirs


def test_the_torch_source_trains_on_tapegrad_like_on_torch():
    ours, theirs = models()
    idx = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(2))
    targets[0, :3] = -1  # ignored positions
    ref_logits, ref_loss = theirs(idx, targets)
    ref_loss.backward()
    with tg.Tape():
        logits, loss = ours(idx, targets)
    loss.backward()
    torch.testing.assert_close(logits.data, ref_logits.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(loss.data, ref_loss.detach(), rtol=1e-10, atol=1e-10)
    ref_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad.data, ref_params[name].grad, rtol=1e-8, atol=1e-10, msg=name)


def test_top_k_sampling_draws_the_same_tokens_as_torch():
    ours, theirs = models()
    start = torch.zeros((2, 1), dtype=torch.long)
    torch.manual_seed(3)
    ref = theirs.generate(start, 12, temperature=0.8, top_k=4)
    tg.manual_seed(3)
    got = ours.generate(start, 12, temperature=0.8, top_k=4)
    assert isinstance(got, tg.Tensor) and torch.equal(got.data, ref)  # 12 > block_size: the crop runs too
