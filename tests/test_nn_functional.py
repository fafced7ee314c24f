"""`tapegrad.nn.functional` against torch's ``torch.nn.functional`` in float64: values, first- and
second-order gradients (against torch.autograd), first order against finite differences too; and the
same calls written as ``torch.nn.functional.X(tg_tensor)`` (reaching F through ``__torch_function__``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from strategies import F64

import tapegrad as tg
from tapegrad.nn import functional as F

TF = torch.nn.functional
TOL = dict(rtol=1e-9, atol=1e-9)
# torch's CPU kernels of hardsigmoid/hardswish backward use the float32 constant 1.0f / 6.0f
FLOAT32_CONSTANTS = {"hard_soft"}


def rand(*shape: int, seed: int = 0, low: float | None = None) -> torch.Tensor:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return x if low is None else x.abs() + low


def probs(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=F64) * 0.8 + 0.1


def labels(n: int, classes: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))


SIGNS = torch.tensor([1.0, -1, -1, 1, 1, -1], dtype=F64)
CAUSAL = torch.ones(4, 4, dtype=torch.bool).tril()
# name -> (the float inputs (differentiable), the rest of the call as f(*floats) -> output)
CASES: dict[str, tuple[list[torch.Tensor], Callable[..., Any]]] = {
    "relu": ([rand(3, 4)], lambda f, x: f.relu(x)),
    "relu6": ([rand(3, 4) * 4], lambda f, x: f.relu6(x)),
    "hardtanh": ([rand(3, 4) * 2], lambda f, x: f.hardtanh(x, -0.5, 0.7)),
    "leaky_relu": ([rand(3, 4)], lambda f, x: f.leaky_relu(x, 0.2)),
    "elu": ([rand(3, 4)], lambda f, x: f.elu(x, alpha=0.7)),
    "gelu": ([rand(3, 4)], lambda f, x: f.gelu(x)),
    "gelu_tanh": ([rand(3, 4)], lambda f, x: f.gelu(x, approximate="tanh")),
    "silu": ([rand(3, 4)], lambda f, x: f.silu(x)),
    "mish": ([rand(3, 4)], lambda f, x: f.mish(x)),
    "softplus": ([rand(3, 4)], lambda f, x: f.softplus(x, beta=2.0)),
    "logsigmoid": ([rand(3, 4)], lambda f, x: f.logsigmoid(x)),
    "sigmoid": ([rand(3, 4)], lambda f, x: f.sigmoid(x)),
    "tanh": ([rand(3, 4)], lambda f, x: f.tanh(x)),
    "softmax": ([rand(3, 4)], lambda f, x: f.softmax(x, dim=-1)),
    "softmax_dtype": ([rand(3, 4)], lambda f, x: f.softmax(x, 0, dtype=F64)),
    "log_softmax": ([rand(2, 3, 4)], lambda f, x: f.log_softmax(x, dim=1)),
    "softmin": ([rand(3, 4)], lambda f, x: f.softmin(x, dim=1)),
    "glu": ([rand(3, 4)], lambda f, x: f.glu(x, dim=-1)),
    "normalize": ([rand(3, 4)], lambda f, x: f.normalize(x, dim=1)),
    "linear": ([rand(5, 3), rand(4, 3, seed=1), rand(4, seed=2)], lambda f, x, w, b: f.linear(x, w, b)),
    "layer_norm": (
        [rand(2, 3, 4), rand(3, 4, seed=1), rand(3, 4, seed=2)],
        lambda f, x, w, b: f.layer_norm(x, (3, 4), w, b, eps=1e-3),
    ),
    "layer_norm_plain": ([rand(2, 5)], lambda f, x: f.layer_norm(x, [5])),
    "embedding": ([rand(6, 3)], lambda f, w: f.embedding(torch.tensor([[0, 2], [5, 2]]), w, padding_idx=2)),
    "embedding_plain": ([rand(6, 3)], lambda f, w: f.embedding(torch.tensor([[0, 2], [5, 2]]), w)),
    "sdpa": (
        [rand(2, 4, 3), rand(2, 4, 3, seed=1), rand(2, 4, 3, seed=2)],
        lambda f, q, k, v: f.scaled_dot_product_attention(q, k, v),
    ),
    "sdpa_causal": (
        [rand(2, 4, 3), rand(2, 4, 3, seed=1), rand(2, 4, 3, seed=2)],
        lambda f, q, k, v: f.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3),
    ),
    "sdpa_bool_mask": (
        [rand(2, 4, 3), rand(2, 4, 3, seed=1), rand(2, 4, 3, seed=2)],
        lambda f, q, k, v: f.scaled_dot_product_attention(q, k, v, attn_mask=CAUSAL),
    ),
    "sdpa_float_mask": (
        [rand(2, 4, 3), rand(2, 4, 3, seed=1), rand(2, 4, 3, seed=2), rand(4, 4, seed=3)],
        lambda f, q, k, v, m: f.scaled_dot_product_attention(q, k, v, attn_mask=m),
    ),
    "cross_entropy": ([rand(5, 4)], lambda f, x: f.cross_entropy(x, labels(5, 4))),
    "cross_entropy_ignore": (
        [rand(5, 4)],
        lambda f, x: f.cross_entropy(x, torch.tensor([0, -1, 3, 1, -1]), ignore_index=-1),
    ),
    "cross_entropy_options": (
        [rand(5, 4, 2)],
        lambda f, x: f.cross_entropy(
            x, labels(10, 4).reshape(5, 2), weight=torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=F64), label_smoothing=0.1
        ),
    ),
    "cross_entropy_probs": ([rand(5, 4), probs(5, 4)], lambda f, x, p: f.cross_entropy(x, p, reduction="sum")),
    "cross_entropy_legacy": ([rand(5, 4)], lambda f, x: f.cross_entropy(x, labels(5, 4), size_average=False)),
    "nll_loss": ([rand(5, 4)], lambda f, x: f.nll_loss(x, labels(5, 4), reduction="none")),
    "mse_loss": ([rand(3, 4), rand(3, 4, seed=1)], lambda f, x, y: f.mse_loss(x, y)),
    "mse_loss_sum": ([rand(3, 4), rand(3, 4, seed=1)], lambda f, x, y: f.mse_loss(x, y, reduction="sum")),
    "l1_loss": ([rand(3, 4), rand(3, 4, seed=1)], lambda f, x, y: f.l1_loss(x, y, reduction="none")),
    "smooth_l1_loss": ([rand(3, 4), rand(3, 4, seed=1)], lambda f, x, y: f.smooth_l1_loss(x, y, beta=0.5)),
    "huber_loss": ([rand(3, 4), rand(3, 4, seed=1)], lambda f, x, y: f.huber_loss(x, y, delta=0.8)),
    "bce": ([probs(3, 4), probs(3, 4, seed=1)], lambda f, p, y: f.binary_cross_entropy(p, y)),
    "bce_logits": (
        [rand(3, 4), probs(3, 4, seed=1)],
        lambda f, x, y: f.binary_cross_entropy_with_logits(x, y, pos_weight=torch.tensor([1.0, 2, 3, 4], dtype=F64)),
    ),
    "kl_div": ([rand(3, 4), probs(3, 4, seed=1)], lambda f, x, y: f.kl_div(x, y, reduction="batchmean")),
    "kl_div_log_target": ([rand(3, 4), rand(3, 4, seed=1)], lambda f, x, y: f.kl_div(x, y, log_target=True)),
    "conv1d": (
        [rand(2, 3, 7), rand(4, 3, 3, seed=1), rand(4, seed=2)],
        lambda f, x, w, b: f.conv1d(x, w, b, stride=2, padding=1),
    ),
    "conv1d_same_even": (
        [rand(1, 2, 7), rand(3, 2, 4, seed=1)],
        lambda f, x, w: f.conv1d(x, w, padding="same", dilation=(1,)),
    ),
    "conv2d": (
        [rand(1, 2, 5, 6), rand(3, 2, 3, 3, seed=1), rand(3, seed=2)],
        lambda f, x, w, b: f.conv2d(x, w, b, stride=(2,), padding=(1,)),
    ),
    "conv2d_same_even": (
        [rand(1, 2, 5, 6), rand(3, 2, 2, 4, seed=1)],
        lambda f, x, w: f.conv2d(x, w, padding="same", dilation=(1, 2)),
    ),
    "conv_transpose2d": (
        [rand(1, 4, 3, 3), rand(4, 3, 3, 2, seed=1), rand(6, seed=2)],
        lambda f, x, w, b: f.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
    ),
    "max_pool1d": ([rand(2, 3, 8)], lambda f, x: f.max_pool1d(x, 3, stride=2, padding=1)),
    "max_pool2d": ([rand(1, 2, 6, 6)], lambda f, x: f.max_pool2d(x, (3,), stride=(2,), padding=1)),
    "avg_pool1d": ([rand(2, 3, 8)], lambda f, x: f.avg_pool1d(x, 2)),
    "avg_pool2d": ([rand(1, 2, 6, 6)], lambda f, x: f.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False)),
    "adaptive_avg_pool2d": ([rand(1, 2, 6, 4)], lambda f, x: f.adaptive_avg_pool2d(x, (3, 2))),
    "pad_constant": ([rand(2, 3, 4)], lambda f, x: f.pad(x, (1, 2, -1, 1), value=0.5)),
    "pad_reflect": ([rand(1, 2, 4, 5)], lambda f, x: f.pad(x, (2, 1, 3, 1), mode="reflect")),
    "pad_replicate": ([rand(1, 2, 4, 5)], lambda f, x: f.pad(x, (2, 1, 0, 3), mode="replicate")),
    "pad_circular": ([rand(1, 2, 4, 5)], lambda f, x: f.pad(x, (2, 1, 1, 2), mode="circular")),
    "interp_nearest": ([rand(1, 2, 3, 4)], lambda f, x: f.interpolate(x, scale_factor=1.5)),
    "interp_nearest_size": ([rand(1, 2, 5)], lambda f, x: f.interpolate(x, size=7)),
    "interp_bilinear": ([rand(1, 2, 3, 4)], lambda f, x: f.interpolate(x, size=(5, 7), mode="bilinear")),
    "interp_bilinear_corners": (
        [rand(1, 2, 3, 4)],
        lambda f, x: f.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True),
    ),
    "batch_norm_train": (
        [rand(4, 3, 2), rand(3, seed=1), rand(3, seed=2)],
        lambda f, x, w, b: f.batch_norm(x, torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64), w, b, True, 0.1),
    ),
    "batch_norm_eval": (
        [rand(4, 3), rand(3, seed=1)],
        lambda f, x, w: f.batch_norm(x, rand(3, seed=5), probs(3, seed=6), w, None, False, eps=0.01),
    ),
    "group_norm": (
        [rand(2, 4, 3), rand(4, seed=1), rand(4, seed=2)],
        lambda f, x, w, b: f.group_norm(x, 2, w, b, eps=1e-3),
    ),
    "rms_norm": ([rand(2, 3, 4), rand(4, seed=1)], lambda f, x, w: f.rms_norm(x, (4,), w, eps=1e-4)),
    "selu_celu": ([rand(3, 4)], lambda f, x: f.selu(x) + f.celu(x, alpha=0.5)),
    "hard_soft": ([rand(3, 4) * 4], lambda f, x: f.hardswish(x) * f.softsign(x)),
    "tanhshrink_threshold": ([rand(3, 4)], lambda f, x: f.tanhshrink(x) + f.threshold(x, 0.1, -2.0)),
    "cosine_similarity": ([rand(3, 4), rand(1, 4, seed=1)], lambda f, a, b: f.cosine_similarity(a, b)),
    "pairwise_distance": ([rand(3, 4), rand(3, 4, seed=1)], lambda f, a, b: f.pairwise_distance(a, b, keepdim=True)),
    "pixel_shuffles": ([rand(1, 8, 2, 4)], lambda f, x: f.pixel_unshuffle(f.pixel_shuffle(x, 2) * x.sum(), 2)),
    "shrinks": ([rand(3, 4)], lambda f, x: f.hardshrink(x, 0.3) + f.softshrink(x, 0.4)),
    "prelu": ([rand(2, 3, 4), rand(3, seed=1)], lambda f, x, w: f.prelu(x, w)),
    "instance_norm": (
        [rand(2, 3, 5), rand(3, seed=1), rand(3, seed=2)],
        lambda f, x, w, b: f.instance_norm(x, weight=w, bias=b),
    ),
    "adaptive_avg_pool1d": ([rand(2, 3, 6)], lambda f, x: f.adaptive_avg_pool1d(x, 3)),
    "max_pool_with_indices": ([rand(2, 3, 6)], lambda f, x: f.max_pool1d_with_indices(x, 2)[0]),
    "upsample_bilinear": ([rand(1, 2, 3, 4)], lambda f, x: f.upsample_bilinear(x, scale_factor=2)),
    "margin_ranking_loss": (
        [rand(6), rand(6, seed=1)],
        lambda f, a, b: f.margin_ranking_loss(a, b, SIGNS, margin=0.1),
    ),
    "hinge_embedding_loss": ([rand(6)], lambda f, x: f.hinge_embedding_loss(x, SIGNS, margin=0.5, reduction="sum")),
    "soft_margin_loss": ([rand(6)], lambda f, x: f.soft_margin_loss(x, SIGNS)),
    "multilabel_soft_margin_loss": (
        [rand(3, 4)],
        lambda f, x: f.multilabel_soft_margin_loss(x, (rand(3, 4, seed=4) > 0).double()),
    ),
    "cosine_embedding_loss": (
        [rand(6, 3), rand(6, 3, seed=1)],
        lambda f, a, b: f.cosine_embedding_loss(a, b, SIGNS, margin=-0.2),
    ),
    "poisson_nll_loss": ([rand(3, 4)], lambda f, x: f.poisson_nll_loss(x, probs(3, 4, seed=1) * 4, full=True)),
    "poisson_nll_loss_rates": ([probs(3, 4)], lambda f, x: f.poisson_nll_loss(x, probs(3, 4, seed=1), log_input=False)),
    "gaussian_nll_loss": (
        [rand(3, 4), rand(3, 4, seed=1), probs(3, 1, seed=2)],
        lambda f, x, y, v: f.gaussian_nll_loss(x, y, v, full=True),
    ),
    "triplet_margin_loss": (
        [rand(4, 3), rand(4, 3, seed=1), rand(4, 3, seed=2)],
        lambda f, a, p, n: f.triplet_margin_loss(a, p, n, margin=2.0, swap=True),
    ),
    "interp_linear_down": ([rand(2, 3, 9)], lambda f, x: f.interpolate(x, size=4, mode="linear")),
}


def _ours(name: str, via_torch: bool) -> tuple[list[tg.Tensor], Any, tg.Tape]:
    floats, call = CASES[name]
    xs = [tg.Tensor(x.clone(), requires_grad=True) for x in floats]
    with tg.Tape(persistent=True) as tape:
        out = call(TF if via_torch else F, *xs)
    return xs, out, tape


@pytest.mark.parametrize("via_torch", [False, True], ids=["F", "torch.nn.functional"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_matches_torch(name: str, via_torch: bool) -> None:
    floats, call = CASES[name]
    tol = dict(rtol=1e-6, atol=1e-7) if name in FLOAT32_CONSTANTS else TOL
    refs = [x.clone().requires_grad_() for x in floats]
    ref = call(TF, *refs)
    outer = tg.Tape()
    with outer:
        xs, out, tape = _ours(name, via_torch)
        outer.watch(*xs)
        assert isinstance(out, tg.Tensor)
        torch.testing.assert_close(out.data, ref.detach(), **tol)
        g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
        grads = tape.gradient(out, xs, grad_output=tg.Tensor(g))
        ref_grads = torch.autograd.grad(ref, refs, g, create_graph=True)
        for ours, theirs in zip(grads, ref_grads):
            torch.testing.assert_close(ours.data, theirs.detach(), **tol)
        # second order: the gradient of <first gradients, v> (v a fixed random direction)
        vs = [
            torch.randn(x.shape, generator=torch.Generator().manual_seed(11 + i), dtype=F64) for i, x in enumerate(xs)
        ]
        total = sum((gr * tg.Tensor(v)).sum() for gr, v in zip(grads, vs))
    ref_total = sum((gr * v).sum() for gr, v in zip(ref_grads, vs))
    if not ref_total.requires_grad:  # linear in its inputs: no second derivative
        return
    # a total that is not recorded does not depend on the inputs: a zero second derivative
    second = outer.gradient(total, xs, allow_unused=True) if total.requires_grad else [None] * len(xs)
    ref_second = torch.autograd.grad(ref_total, refs, allow_unused=True)
    for ours2, theirs2 in zip(second, ref_second):
        expected = torch.zeros_like(refs[0]) if theirs2 is None else theirs2
        got = torch.zeros_like(expected) if ours2 is None else ours2.data
        torch.testing.assert_close(got, expected, **tol)


# the padding row of an embedding gets no gradient by definition (torch's), whatever finite differences say
NO_FINITE_DIFFERENCES = {"embedding"}


@pytest.mark.parametrize("name", sorted(set(CASES) - NO_FINITE_DIFFERENCES))
def test_functional_gradients_match_finite_differences(name: str) -> None:
    floats, call = CASES[name]
    assert tg.gradcheck(lambda *xs: call(F, *xs), [tg.Tensor(x) for x in floats])


def test_one_hot_and_dropout_follow_torch() -> None:
    y = torch.tensor([[0, 3], [2, 1]])
    torch.testing.assert_close(F.one_hot(tg.Tensor(y), 5).data, TF.one_hot(y, 5))
    torch.testing.assert_close(F.one_hot(y).data, TF.one_hot(y))
    x = tg.Tensor(rand(50, 40), requires_grad=True)
    tg.manual_seed(3)
    ours = F.dropout(x, 0.3)
    torch.manual_seed(3)
    mask = torch.bernoulli(torch.full_like(x.data, 0.7)) / 0.7
    torch.testing.assert_close(ours.data, x.data * mask)
    assert F.dropout(x, 0.3, training=False) is x


def test_channel_dropout_zeroes_whole_channels() -> None:
    x = tg.Tensor(rand(40, 30, 5), requires_grad=True)
    with tg.Tape() as tape:
        out = F.dropout1d(x, 0.4)
        total = out.sum()
    kept = out.data != 0
    assert bool((kept.all(-1) | (~kept).all(-1)).all())  # a channel is kept or dropped whole
    torch.testing.assert_close(out.data[kept], x.data[kept] / 0.6)
    assert 0.45 < float(kept.double().mean()) < 0.75
    grad = tape.gradient(total, x).data
    torch.testing.assert_close(grad, kept.double() / 0.6)
    assert F.dropout2d(x, 0.4, training=False) is x


def test_hardsigmoid_follows_torch_to_first_order() -> None:  # torch has no second order of it
    a = rand(3, 4) * 4
    ra, x = a.clone().requires_grad_(), tg.Tensor(a.clone(), requires_grad=True)
    ref = TF.hardsigmoid(ra)
    with tg.Tape() as tape:
        out = F.hardsigmoid(x)
    torch.testing.assert_close(out.data, ref.detach(), **TOL)
    g = rand(3, 4, seed=1)
    torch.testing.assert_close(tape.gradient(out, x, tg.Tensor(g)).data, torch.autograd.grad(ref, ra, g)[0])


def test_options_tapegrad_lacks_raise_naming_them() -> None:
    x = tg.Tensor(rand(1, 2, 5, 5))
    with pytest.raises(ValueError, match="interpolate: mode 'bicubic'"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output_size"):
        F.adaptive_avg_pool2d(x, 3)
