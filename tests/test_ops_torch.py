"""The ops torch users reach for, called as users call them, against torch in float64 (forward and gradient).

Also the three places where tapegrad used to differ from torch: max(dim) sends the gradient to the
returned index, pow's gradients at 0, and torch's type promotion (gradients in each input's dtype).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import F64, examples, seeds, upstream

import tapegrad as tg
from tapegrad.engine.errors import IndexShapeError, ShapeError

TOL = dict(rtol=1e-10, atol=1e-10)


def compare(ours, theirs, *inputs: torch.Tensor, seed: int = 0) -> None:
    """ours(*tg leaves) and theirs(*torch leaves) agree, and so do their gradients for a random upstream."""
    xs = [tg.Tensor(x.clone(), requires_grad=x.is_floating_point()) for x in inputs]
    with tg.Tape() as tape:
        out = ours(*xs)
    refs = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    ref = theirs(*refs)
    torch.testing.assert_close(out.data, ref.detach(), **TOL)
    g = upstream(out.shape, seed).to(out.dtype)
    floats = [i for i, x in enumerate(inputs) if x.is_floating_point()]
    grads = tape.gradient(out, [xs[i] for i in floats], grad_output=tg.Tensor(g), allow_unused=True)
    ref_grads = torch.autograd.grad(ref, [refs[i] for i in floats], g, allow_unused=True)
    for i, ours_g, ref_g in zip(floats, grads, ref_grads):
        ours_g = torch.zeros_like(inputs[i]) if ours_g is None else ours_g.data
        ref_g = torch.zeros_like(inputs[i]) if ref_g is None else ref_g
        assert ours_g.dtype == inputs[i].dtype
        torch.testing.assert_close(ours_g, ref_g, **TOL)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- every op against torch ------------------------------------------------------------------------
CASES = {
    "min": (lambda x: x.min(), lambda x: x.min()),
    "min dim": (lambda x: x.min(1).values, lambda x: x.min(1).values),
    "max dim keepdim": (lambda x: x.max(-1, keepdim=True)[0], lambda x: x.max(-1, keepdim=True)[0]),
    "amax": (lambda x: x.amax((0, 2)), lambda x: x.amax((0, 2))),
    "amin keepdim": (lambda x: tg.amin(x, 1, keepdim=True), lambda x: torch.amin(x, 1, keepdim=True)),
    "var": (lambda x: x.var(), lambda x: x.var()),
    "var dim correction": (lambda x: x.var(1, correction=0), lambda x: x.var(1, correction=0)),
    "var unbiased keepdim": (
        lambda x: tg.var(x, (0, 2), unbiased=False, keepdim=True),
        lambda x: torch.var(x, (0, 2), unbiased=False, keepdim=True),
    ),
    "std": (lambda x: x.std(-1), lambda x: x.std(-1)),
    "std correction": (lambda x: tg.std(x, 0, correction=2), lambda x: torch.std(x, 0, correction=2)),
    "norm": (lambda x: x.norm(), lambda x: x.norm()),
    "norm 1 dim": (lambda x: x.norm(1, dim=1), lambda x: x.norm(1, dim=1)),
    "norm inf keepdim": (lambda x: tg.norm(x, math.inf, (1, 2), True), lambda x: torch.norm(x, math.inf, (1, 2), True)),
    "norm fro dim": (lambda x: x.norm("fro", dim=(0, 1)), lambda x: x.norm("fro", dim=(0, 1))),
    "log1p": (lambda x: (x.abs()).log1p(), lambda x: x.abs().log1p()),
    "expm1": (lambda x: x.expm1(), lambda x: x.expm1()),
    "erf": (lambda x: tg.erf(x), lambda x: torch.erf(x)),
    "gelu": (lambda x: tg.gelu(x), F.gelu),
    "gelu tanh": (lambda x: tg.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh")),
    "leaky_relu": (lambda x: tg.leaky_relu(x), F.leaky_relu),
    "leaky_relu 0.2": (lambda x: tg.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2)),
    "softplus": (lambda x: tg.softplus(x * 10), lambda x: F.softplus(x * 10)),
    "softplus beta threshold": (lambda x: tg.softplus(x, 2.0, 1.0), lambda x: F.softplus(x, 2.0, 1.0)),
    "squeeze": (lambda x: x[:1].squeeze(), lambda x: x[:1].squeeze()),
    "squeeze dims": (lambda x: tg.squeeze(x[:, :1, :1], (1, 2)), lambda x: torch.squeeze(x[:, :1, :1], (1, 2))),
    "unsqueeze": (lambda x: tg.unsqueeze(x, -1), lambda x: torch.unsqueeze(x, -1)),
    "flatten": (lambda x: tg.flatten(x, 1), lambda x: torch.flatten(x, 1)),
    "unflatten": (lambda x: x.unflatten(1, (2, -1)), lambda x: x.unflatten(1, (2, -1))),
    "masked_fill": (lambda x: x.masked_fill(x > 0.3, -2.0), lambda x: x.masked_fill(x > 0.3, -2.0)),
    "masked_fill broadcast mask": (
        lambda x: tg.masked_fill(x, torch.tensor([True, False, True, False, True]), 1.0),
        lambda x: torch.masked_fill(x, torch.tensor([True, False, True, False, True]), 1.0),
    ),
    "gather": (
        lambda x: x.gather(2, torch.tensor([[[0, 1, 0, 2, 4]], [[3, 3, 3, 1, 0]], [[2, 2, 0, 0, 1]]])),
        lambda x: x.gather(2, torch.tensor([[[0, 1, 0, 2, 4]], [[3, 3, 3, 1, 0]], [[2, 2, 0, 0, 1]]])),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=examples(10), deadline=None)
@given(seed=seeds)
def test_op_matches_torch(name, seed):
    ours, theirs = CASES[name]
    compare(ours, theirs, rand(3, 4, 5, seed=seed), seed=seed)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@settings(max_examples=examples(10), deadline=None)
@given(seed=seeds)
def test_maximum_minimum_broadcast_and_split_ties_like_torch(name, seed):
    x, y = rand(3, 1, 4, seed=seed), rand(5, 1, seed=seed + 1)
    x[0, 0, :2] = 0.25  # ties: the gradient is split in half, as torch splits it
    y[:2, 0] = 0.25
    compare(getattr(tg, name), getattr(torch, name), x, y, seed=seed)
    compare(lambda a, b: getattr(a, name)(b), lambda a, b: getattr(a, name)(b), x, y, seed=seed)
    other = {"maximum": "max", "minimum": "min"}[name]  # torch.max(x, other) is maximum
    compare(lambda a, b: getattr(a, other)(b), lambda a, b: getattr(a, other)(b), x, y, seed=seed)


def test_argmax_argmin_are_integer_constants_like_torch():
    x = rand(3, 4)
    for name in ("argmax", "argmin"):
        for kwargs in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}):
            ours = getattr(tg.Tensor(x), name)(**kwargs)
            assert isinstance(ours, tg.Tensor) and not ours.requires_grad
            assert torch.equal(ours.data, getattr(x, name)(**kwargs))
            assert torch.equal(getattr(tg, name)(tg.Tensor(x), **kwargs).data, getattr(torch, name)(x, **kwargs))


# --- convolution and pooling --------------------------------------------------------------------------
@settings(max_examples=examples(15), deadline=None)
@given(
    groups=st.sampled_from([1, 2]),
    stride=st.sampled_from([1, 2, (2, 1)]),
    padding=st.sampled_from([0, 1, (1, 2), "valid"]),
    dilation=st.sampled_from([1, 2]),
    bias=st.booleans(),
    batched=st.booleans(),
    seed=seeds,
)
def test_conv2d_matches_torch(groups, stride, padding, dilation, bias, batched, seed):
    x = rand(2, 4, 7, 6, seed=seed) if batched else rand(4, 7, 6, seed=seed)
    w, b = rand(6, 4 // groups, 3, 2, seed=seed + 1), rand(6, seed=seed + 2)
    args = (x, w, b) if bias else (x, w)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    compare(lambda *a: tg.conv2d(*a, **kw), lambda *a: F.conv2d(*a, **kw), *args, seed=seed)


def test_conv2d_same_padding_matches_torch():
    x, w = rand(1, 2, 5, 5), rand(3, 2, 3, 3)
    compare(lambda a, b: tg.conv2d(a, b, padding="same"), lambda a, b: F.conv2d(a, b, padding="same"), x, w)


@settings(max_examples=examples(15), deadline=None)
@given(
    kernel=st.sampled_from([2, 3, (3, 2)]),
    stride=st.sampled_from([None, 1, 2]),
    padding=st.sampled_from([0, 1]),
    ceil_mode=st.booleans(),
    seed=seeds,
)
def test_pooling_matches_torch(kernel, stride, padding, ceil_mode, seed):
    x = rand(2, 3, 7, 6, seed=seed)
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    compare(lambda a: tg.max_pool2d(a, **kw), lambda a: F.max_pool2d(a, **kw), x, seed=seed)
    compare(lambda a: tg.max_pool2d(a, dilation=2, **kw), lambda a: F.max_pool2d(a, dilation=2, **kw), x, seed=seed)
    for include in (True, False):
        kw["count_include_pad"] = include
        compare(lambda a: tg.avg_pool2d(a, **kw), lambda a: F.avg_pool2d(a, **kw), x, seed=seed)
    compare(lambda a: tg.avg_pool2d(a, 2, divisor_override=3), lambda a: F.avg_pool2d(a, 2, divisor_override=3), x[0])


def test_max_pool2d_ties_and_return_indices_follow_torch():
    x = torch.zeros(1, 1, 4, 4, dtype=F64)  # every window tied: the gradient goes to torch's index
    compare(lambda a: tg.max_pool2d(a, 2, 1), lambda a: F.max_pool2d(a, 2, 1), x)
    out, idx = tg.max_pool2d(tg.Tensor(rand(1, 2, 4, 4)), 2, return_indices=True)
    ref, ref_idx = F.max_pool2d(rand(1, 2, 4, 4), 2, return_indices=True)
    assert torch.equal(out.data, ref) and torch.equal(idx.data, ref_idx)


def test_conv2d_second_order_matches_torch():
    x, w = rand(1, 2, 5, 5), rand(3, 2, 3, 3, seed=1)
    xs, ws = tg.Tensor(x, requires_grad=True), tg.Tensor(w, requires_grad=True)
    with tg.Tape() as outer:
        with tg.Tape() as inner:
            out = (tg.conv2d(xs, ws, stride=2, padding=1).tanh() ** 2).sum()
        gx, gw = inner.gradient(out, [xs, ws])
        total = (gx * gx).sum() + (gw * gw).sum()
    ours = outer.gradient(total, [xs, ws])
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    ref_out = (F.conv2d(xr, wr, stride=2, padding=1).tanh() ** 2).sum()
    rgx, rgw = torch.autograd.grad(ref_out, [xr, wr], create_graph=True)
    ref = torch.autograd.grad((rgx * rgx).sum() + (rgw * rgw).sum(), [xr, wr])
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.data, b, **TOL)


# --- dropout --------------------------------------------------------------------------------------------
def test_dropout_masks_from_a_generator_and_scales_by_one_over_keep():
    x = tg.Tensor(torch.ones(200, 50, dtype=F64), requires_grad=True)
    gen = torch.Generator().manual_seed(3)
    with tg.Tape() as tape:
        out = tg.dropout(x, 0.3, generator=gen)
        total = out.sum()
    kept = out.data != 0
    assert torch.allclose(out.data[kept], torch.full_like(out.data[kept], 1 / 0.7))
    assert abs(kept.double().mean().item() - 0.7) < 0.02
    (grad,) = tape.gradient(total, [x])
    assert torch.equal(grad.data, out.data)  # the gradient is the scaled mask
    again = tg.dropout(x, 0.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again.data, out.data)  # the same generator state gives the same mask
    assert tg.dropout(x, 0.3, training=False) is x and tg.dropout(x, 0.0) is x
    assert torch.equal(tg.dropout(x, 1.0).data, torch.zeros_like(x.data))


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True])
def test_dropout_rejects_a_probability_outside_0_1(p):
    with pytest.raises(ValueError, match=r"dropout: p must be a probability in \[0, 1\]"):
        tg.dropout(tg.Tensor(torch.ones(3)), p)


def test_bad_index_ops_name_the_op_and_argument():
    x = tg.Tensor(rand(3, 4))
    with pytest.raises(IndexShapeError, match="gather: index values lie in"):
        x.gather(1, torch.tensor([[4]]).expand(3, 1))
    with pytest.raises(ShapeError, match=r"gather: index \(1,\) has 1 dimensions"):
        x.gather(1, torch.tensor([0]))
    with pytest.raises(TypeError, match="masked_fill: mask must be a bool tensor"):
        x.masked_fill(torch.ones(3, 4), 0.0)
    with pytest.raises(ShapeError, match="conv2d: expects input"):
        tg.conv2d(tg.Tensor(rand(5, 5)), tg.Tensor(rand(1, 1, 3, 3)))
    with pytest.raises(ValueError, match="norm: p must be"):
        x.norm(3)


# --- the three defects ------------------------------------------------------------------------------
def test_max_dim_sends_the_gradient_to_the_returned_index_like_torch():
    x = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [5.0, 5.0, 5.0]], dtype=F64)
    for fn in ("max", "min"):
        along_rows = lambda a, fn=fn: getattr(a, fn)(1).values  # noqa: E731
        along_columns = lambda a, fn=fn: getattr(a, fn)(0, keepdim=True).values  # noqa: E731
        compare(along_rows, along_rows, x)
        compare(along_columns, along_columns, x)
    xs = tg.Tensor(x, requires_grad=True)
    with tg.Tape() as tape:
        values, indices = xs.max(1)
        total = values.sum()
    (grad,) = tape.gradient(total, [xs])
    assert indices.tolist() == [1, 0, 0]
    assert grad.tolist() == [[0, 1, 0], [1, 0, 0], [1, 0, 0]]


def test_full_max_and_amax_split_the_gradient_among_ties_like_torch():
    x = torch.tensor([[1.0, 3.0, 3.0], [3.0, 2.0, 0.0]], dtype=F64)
    for ours, theirs in [
        (lambda a: a.max(), lambda a: a.max()),
        (lambda a: a.min(), lambda a: a.min()),
        (lambda a: a.amax(1), lambda a: a.amax(1)),
        (lambda a: a.amin(0), lambda a: a.amin(0)),
    ]:
        compare(ours, theirs, x)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda x, y: x**y, lambda x, y: x**y),
        (lambda x, y: x**0 + y * 0, lambda x, y: x**0 + y * 0),
        (lambda x, y: 0**y + x * 0, lambda x, y: 0**y + x * 0),
        (lambda x, y: x**2.5 + y * 0, lambda x, y: x**2.5 + y * 0),
    ],
)
def test_pow_gradients_at_zero_are_torch_s(ours, theirs):
    x = torch.tensor([0.0, 0.0, 0.0, 2.0, 1.5], dtype=F64)
    y = torch.tensor([0.0, 2.0, 1.0, 0.0, -1.0], dtype=F64)
    compare(ours, theirs, x, y)
    xs, ys = tg.Tensor(x, requires_grad=True), tg.Tensor(y, requires_grad=True)
    with tg.Tape() as tape:
        out = ours(xs, ys).sum()
    gx, gy = tape.gradient(out, [xs, ys])
    assert torch.isfinite(gx.data[:3]).all() and torch.isfinite(gy.data[:3]).all()


def test_pow_named_cases_of_the_issue():
    for x, y, expected in [(0.0, 0.0, (0.0, 0.0)), (0.0, 2.0, (0.0, 0.0)), (2.0, 0.0, (0.0, math.log(2.0)))]:
        xs = tg.Tensor(torch.tensor(x, dtype=F64), requires_grad=True)
        ys = tg.Tensor(torch.tensor(y, dtype=F64), requires_grad=True)
        with tg.Tape() as tape:
            out = xs**ys
        assert tuple(g.item() for g in tape.gradient(out, [xs, ys])) == pytest.approx(expected)
    xs = tg.Tensor(torch.tensor(0.0, dtype=F64), requires_grad=True)
    with tg.Tape() as tape:
        out = xs**0
    assert tape.gradient(out, [xs])[0].item() == 0.0


PROMOTING = {
    "add": (tg.add, torch.add),
    "sub": (tg.sub, torch.sub),
    "mul": (tg.mul, torch.mul),
    "div": (tg.div, torch.div),
    "pow": (lambda a, b: tg.pow(a.abs() + 0.5, b), lambda a, b: torch.pow(a.abs() + 0.5, b)),
    "maximum": (tg.maximum, torch.maximum),
    "minimum": (tg.minimum, torch.minimum),
    "where": (lambda a, b: tg.where(a.data > 0, a, b), lambda a, b: torch.where(a > 0, a, b)),
    "cat": (lambda a, b: tg.cat([a, b]), lambda a, b: torch.cat([a, b])),
    "stack": (lambda a, b: tg.stack([a, b]), lambda a, b: torch.stack([a, b])),
}


@pytest.mark.parametrize("name", sorted(PROMOTING))
@pytest.mark.parametrize(
    "left, right",
    [
        (torch.float32, torch.float64),
        (torch.float64, torch.float32),
        (torch.float16, torch.float32),
        (torch.float32, torch.int64),
        (torch.int32, torch.float64),
    ],
)
def test_type_promotion_follows_torch_and_gradients_keep_each_input_s_dtype(name, left, right):
    ours, theirs = PROMOTING[name]
    a, b = rand(3, 4).to(left), (rand(3, 4, seed=1) * 3).to(right)
    xs = [tg.Tensor(t, requires_grad=t.is_floating_point()) for t in (a, b)]
    with tg.Tape() as tape:
        out = ours(*xs)
        total = out.sum()
    ref = theirs(a, b)
    assert out.dtype == ref.dtype
    torch.testing.assert_close(out.data, ref)
    floats = [x for x in xs if x.requires_grad]
    grads = tape.gradient(total, floats)
    refs = [t.clone().requires_grad_() for t in (a, b) if t.is_floating_point()]
    ref_grads = torch.autograd.grad(theirs(*_fill(refs, (a, b))).sum(), refs)
    for x, g, r in zip(floats, grads, ref_grads):
        assert g.dtype == x.dtype == r.dtype
        torch.testing.assert_close(g.data, r)


def _fill(refs: list, originals: tuple) -> list:
    it = iter(refs)
    return [next(it) if t.is_floating_point() else t for t in originals]


def test_zero_dim_tensors_do_not_promote_dimensioned_ones_like_torch():
    x = tg.Tensor(torch.ones(3, dtype=torch.float32), requires_grad=True)
    s = tg.Tensor(torch.tensor(2.0, dtype=F64), requires_grad=True)
    with tg.Tape() as tape:
        out = x * s
        total = out.sum()
    assert out.dtype == (torch.ones(3) * torch.tensor(2.0, dtype=F64)).dtype == torch.float32
    gx, gs = tape.gradient(total, [x, s])
    assert gx.dtype == torch.float32 and gs.dtype == F64 and gs.item() == 3.0


def test_mixed_precision_loss_trains_float32_weights_against_float64_targets():
    w = tg.Tensor(torch.ones(4, dtype=torch.float32), requires_grad=True)
    target = tg.Tensor(torch.zeros(4, dtype=F64))
    with tg.Tape() as tape:
        loss = ((w * 2 - target) ** 2).mean()
    (g,) = tape.gradient(loss, [w])
    assert loss.dtype == F64 and g.dtype == torch.float32
    torch.testing.assert_close(g.data, torch.full((4,), 2.0))
