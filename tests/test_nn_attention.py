"""MultiheadAttention, TransformerEncoderLayer and TransformerEncoder against torch.nn in float64:
parameter names, outputs, attention weights and gradients, with masks, batch_first and pre/post-norm."""

from __future__ import annotations

import pytest
import torch
from parity import TOL, assert_parity, ported, rand

import nn
import tapegrad as tg

TNN = torch.nn


class SelfAttention(nn.Module):
    """``attn(x, x, x, **kwargs)[index]``: one tensor output for the parity helper."""

    def __init__(self, attn, index=0, **kwargs):
        super().__init__()
        object.__setattr__(self, "attn", attn)
        self.index, self.kwargs = index, kwargs

    def parameters(self):
        return self.attn.parameters()

    def __call__(self, x):
        return self.attn(x, x, x, **self.kwargs)[self.index]


def causal(n):
    return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)


@pytest.mark.parametrize(
    "options, kwargs",
    [
        (dict(), dict()),
        (dict(batch_first=True), dict(attn_mask=causal(4))),
        (dict(bias=False), dict(key_padding_mask=torch.tensor([[False, False, True, True], [False] * 4]))),
        (dict(add_bias_kv=True, add_zero_attn=True), dict(attn_mask=rand(4, 4, seed=3) * 0.5)),
        (dict(), dict(attn_mask=causal(4), key_padding_mask=torch.tensor([[False, False, False, True]] * 2))),
        (dict(), dict(average_attn_weights=False)),
    ],
    ids=str,
)
def test_multihead_attention_matches_torch(options, kwargs):
    ref = TNN.MultiheadAttention(6, 2, **options)
    ours = ported(nn.MultiheadAttention(6, 2, **options), ref)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    x = rand(2, 4, 6) if options.get("batch_first") else rand(4, 2, 6)
    for index in (0, 1):
        assert_parity(SelfAttention(ours, index, **kwargs), SelfAttention(ref, index, **kwargs), x, seed=index)


def test_cross_attention_with_other_key_and_value_sizes():
    ref = TNN.MultiheadAttention(4, 2, kdim=3, vdim=5)
    ours = ported(nn.MultiheadAttention(4, 2, kdim=3, vdim=5), ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    q, k, v = rand(3, 2, 4), rand(5, 2, 3, seed=1), rand(5, 2, 5, seed=2)
    out, weights = ours(q, k, v)
    r_out, r_weights = ref(q, k, v)
    torch.testing.assert_close(out.data, r_out.detach(), **TOL)
    torch.testing.assert_close(weights.data, r_weights.detach(), **TOL)
    unbatched, _ = ours(q[:, 0], k[:, 0], v[:, 0], need_weights=False)
    torch.testing.assert_close(unbatched.data, ref(q[:, 0], k[:, 0], v[:, 0])[0].detach(), **TOL)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_matches_torch(norm_first, activation):
    def make(lib):
        layer = lib.TransformerEncoderLayer(6, 2, dim_feedforward=8, dropout=0.0, activation=activation,
                                            batch_first=True, norm_first=norm_first)  # fmt: skip
        return lib.TransformerEncoder(layer, num_layers=2, norm=lib.LayerNorm(6), enable_nested_tensor=False)

    ref = make(TNN)
    ours = ported(make(nn), ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = rand(2, 5, 6)
    assert_parity(ours, ref, x)
    with tg.Tape() as tape:
        ours(tg.tensor(x, requires_grad=True))
    assert [r.primitive.name for r in tape].count("scaled_dot_product_attention") == 2  # the fused op, per layer
    mask, padding = causal(5), torch.tensor([[False] * 5, [False, False, False, True, True]])
    out = ours(x, mask=mask, src_key_padding_mask=padding)
    torch.testing.assert_close(out.data, ref(x, mask=mask, src_key_padding_mask=padding).detach(), **TOL)


def test_dropout_in_attention_and_errors():
    attn = nn.MultiheadAttention(4, 2, dropout=0.5).double()
    x = rand(3, 2, 4)
    assert not torch.equal(attn(x, x, x)[1].data, attn(x, x, x)[1].data)
    attn.eval()
    assert torch.equal(attn(x, x, x)[1].data, attn(x, x, x)[1].data)
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(5, 2)
    with pytest.raises(tg.ShapeError, match="expected query"):
        attn(rand(3, 2, 5), x, x)
    with pytest.raises(RuntimeError, match="is_causal"):
        attn(x, x, x, is_causal=True)
