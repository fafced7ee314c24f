"""Issue 23's ops called as torch users call them (functions, methods, operators, numbers, broadcasting),
against torch in float64: values and gradients. The primitives' own first/second-order and forward-mode
checks are registry-driven (tests/op_specs_ops.py)."""

from __future__ import annotations

import pytest
import torch
from strategies import F64
from test_ops_torch import compare, rand

import tapegrad as tg

IDX = torch.tensor([[0, 2, 1, 0, 4], [3, 3, 0, 1, 2], [1, 0, 4, 2, 2]])
PERM = torch.tensor([[4, 2, 1, 0, 3], [0, 3, 2, 1, 4], [1, 0, 4, 2, 3]])  # unique along dim 1: scatter is well-defined


def positive(x):
    return x.abs() + 0.5


CASES = {
    # elementwise math (x is (3, 4, 5) in [-3, 3] roughly)
    "tan": (lambda x: (x * 0.3).tan(), None),
    "asin acos atan": (lambda x: (x * 0.2).tanh().asin() + (x * 0.2).tanh().acos() + x.atan(), None),
    "hyperbolic": (
        lambda x: x.sinh() * x.cosh() + x.asinh() + positive(x).add(1).acosh() + x.tanh().mul(0.9).atanh(),
        None,
    ),
    "rsqrt log2 log10": (lambda x: positive(x).rsqrt() + positive(x).log2() + positive(x).log10(), None),
    "atan2 broadcast": (lambda x: torch.atan2(x, positive(x[:1, :1])), lambda x: tg.atan2(x, positive(x[:1, :1]))),
    "atan2 number": (lambda x: torch.atan2(x, torch.tensor(2.0, dtype=F64)), lambda x: tg.atan2(x, 2.0)),
    "copysign": (lambda x: x.copysign(x[0]), None),
    "copysign number": (lambda x: torch.copysign(x, -1.0), lambda x: tg.copysign(x, -1.0)),
    "fmod remainder": (lambda x: x.fmod(0.7) + x.remainder(-0.7) + x % 0.6, None),
    "fmod tensor": (lambda x: torch.fmod(x, positive(x[0])), lambda x: tg.fmod(x, positive(x[0]))),
    "lerp number": (lambda x: x.lerp(x[0], 0.3), None),
    "lerp tensor": (lambda x: torch.lerp(x, x[1], x[2].sigmoid()), lambda x: tg.lerp(x, x[1], x[2].sigmoid())),
    "floor ceil trunc round frac": (lambda x: x.floor() + x.ceil() * x + x.trunc() + x.round() + x.frac(), None),
    "round decimals": (lambda x: x.round(decimals=1) * x, None),
    "sign": (lambda x: x.sign() * x, None),
    "div rounding": (lambda x: x.div(0.7, rounding_mode="floor") + x.div(x[0], rounding_mode="trunc") * x, None),
    "clip clamp": (lambda x: x.clip(-0.5, 0.5) + x.clamp(min=0.1), None),
    # reductions and scans
    "prod": (lambda x: x.prod() + x.prod(1).sum(), None),
    "prod keepdim zeros": (lambda x: torch.prod(x.relu(), dim=-1, keepdim=True), lambda x: tg.prod(x.relu(), -1, True)),
    "cumsum cumprod": (lambda x: x.cumsum(1) + x.cumprod(-1), None),
    "cumprod zeros": (lambda x: x.relu().cumprod(2), None),
    "cummax cummin": (lambda x: x.cummax(0).values + x.cummin(dim=2)[0], None),
    "sort": (lambda x: x.sort(1).values * x.sort(dim=-1, descending=True)[0], None),
    "topk": (lambda x: x.topk(3).values + x.topk(2, dim=0, largest=False)[0].sum(), None),
    "kthvalue median": (lambda x: x.kthvalue(2, 1).values + x.median(1).values + x.median(), None),
    # rearranging
    "flip roll": (lambda x: x.flip(0) + x.flip((1, 2)) + x.roll(2, 1) + x.roll((1, -1), (0, 2)) + x.roll(3), None),
    "tril triu": (lambda x: x.tril() + x.triu(1) + torch.tril(x, -1), lambda x: x.tril() + x.triu(1) + tg.tril(x, -1)),
    "diagonal": (lambda x: x.diagonal() + x.diagonal(1, 1, 2).sum(), None),
    "diag": (lambda x: x[0].diag(1) + torch.diag(x[0, 0]).sum(), lambda x: x[0].diag(1) + tg.diag(x[0, 0]).sum()),
    "unfold": (lambda x: x.unfold(2, 2, 1).sum(-1) + x.unfold(2, 3, 2).sum(), None),
    "split chunk": (lambda x: x.split(2, 1)[1] * x.chunk(2, 1)[0][:, :1] + x.split([1, 3], 1)[0], None),
    "narrow": (
        lambda x: x.narrow(2, 1, 3) + torch.narrow(x, -1, -2, 2).sum(),
        lambda x: x.narrow(2, 1, 3) + tg.narrow(x, -1, -2, 2).sum(),
    ),
    "tensor_split": (lambda x: torch.tensor_split(x, 3, dim=2)[2], lambda x: tg.tensor_split(x, 3, dim=2)[2]),
    "contiguous": (lambda x: x.transpose(0, 2).contiguous().view(5, -1), None),
    # picking and placing
    "index_select": (
        lambda x: x.index_select(2, torch.tensor([4, 0, 0])) + x.index_select(1, torch.tensor([3])).sum(),
        None,
    ),
    "index_select 0-d": (
        lambda x: x[0, 0, 0].index_select(0, torch.tensor([0])) * x[0, 0, 0].index_select(0, torch.tensor(0)),
        None,
    ),
    "masked_select": (lambda x: x.masked_select(x[0] > 0), None),
    "repeat_interleave": (
        lambda x: x.repeat_interleave(2, dim=1) + x.repeat_interleave(torch.tensor([1, 2, 0, 1]), 1).sum(),
        None,
    ),
    "repeat_interleave flat": (lambda x: torch.repeat_interleave(x, 2), lambda x: tg.repeat_interleave(x, 2)),
    "scatter": (lambda x: x[:, 0].scatter(1, PERM, x[:, 1] * 2), None),
    "scatter value": (lambda x: x[:, 0].scatter(1, PERM[:, :2], 1.5), None),
    "einsum": (
        lambda x: torch.einsum("bij,jk->bik", x, x[0].T[:, :2]),
        lambda x: tg.einsum("bij,jk->bik", x, x[0].T[:, :2]),
    ),
    "einsum ellipsis implicit": (
        lambda x: torch.einsum("...ij,jk", x, x[0].T),
        lambda x: tg.einsum("...ij,jk", x, x[0].T),
    ),
    "einsum diagonal": (lambda x: torch.einsum("iij->ji", x[:, :3]), lambda x: tg.einsum("iij->ji", [x[:, :3]])),
    "scatter_add": (lambda x: x[:, 0].scatter_add(1, IDX, x[:, 1] * 2), None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_torch(name):
    theirs, ours = CASES[name]
    compare(ours or theirs, theirs, rand(3, 4, 5, seed=1) * 1.5, seed=2)


def test_floor_division_and_reflected_remainder_match_torch_with_zero_and_rounded_gradients():
    x = tg.Tensor(rand(3, 4) + 3.0, requires_grad=True)  # torch has no derivative for these: values only
    with tg.Tape() as tape:
        total = (x // 0.7 + 3.0 // x + 2.5 % x).sum()
    ref = x.data // 0.7 + 3.0 // x.data + 2.5 % x.data
    torch.testing.assert_close(total.data, ref.sum())
    (grad,) = tape.gradient(total, [x])  # d(2.5 % x)/dx = -floor(2.5 / x)
    torch.testing.assert_close(grad.data, -torch.floor(2.5 / x.data))


def test_piecewise_constant_ops_record_a_zero_gradient():
    x = tg.Tensor(rand(4), requires_grad=True)
    for op in ("sign", "floor", "ceil", "trunc", "round"):
        with tg.Tape() as tape:
            total = getattr(x, op)().sum()
        (grad,) = tape.gradient(total, [x])
        assert torch.equal(grad.data, torch.zeros(4, dtype=F64)), op


def test_bool_and_integer_operators_and_tests_of_closeness_match_torch():
    a, b = rand(6) > 0, rand(6, seed=3) > 0
    i, j = torch.arange(6), torch.tensor([3, 1, 4, 1, 5, 9])
    ta, tb, ti, tj = (tg.Tensor(t) for t in (a, b, i, j))
    pairs = [
        (ta & tb, a & b), (ta | tb, a | b), (ta ^ tb, a ^ b), (~ta, ~a), (ti & tj, i & j), (ti | 2, i | 2),
        (ti ^ tj, i ^ j), (~ti, ~i), (ti % 4, i % 4), (ti // 4, i // 4), (tj // ti.clip(min=1), j // i.clip(min=1)),
        (tg.logical_and(ta, tb), a.logical_and(b)), (tg.logical_or(ta, tb), a.logical_or(b)),
        (tg.logical_not(ta), ~a), (tg.logical_xor(ta, tb), a ^ b), (ta.all(), a.all()), (ta.any(), a.any()),
        (tg.all(ti, dim=0), i.all(dim=0)),
        (tg.any(tg.Tensor(a.reshape(2, 3)), dim=1, keepdim=True), a.reshape(2, 3).any(1, keepdim=True)),
        (tg.isclose(ti.double(), tj.double() + 1e-9), torch.isclose(i.double(), j.double() + 1e-9)),
    ]  # fmt: skip
    for ours, ref in pairs:
        assert isinstance(ours, tg.Tensor) and ours.dtype == ref.dtype and torch.equal(ours.data, ref)
    assert tg.allclose(ti.double(), i.double()) is True and tg.equal(ti, tj) is False
    with pytest.raises(TypeError, match="bitwise_and: cannot apply"):
        tg.Tensor(rand(3)) & tg.Tensor(rand(3))


def test_dtype_conversions_and_bit_views_match_torch():
    x = tg.Tensor(rand(2, 3, seed=4) * 5, requires_grad=True)
    ref = x.data
    for name in ("half", "int", "long", "bool", "float", "double", "short", "byte", "bfloat16"):
        assert torch.equal(getattr(x, name)().data, getattr(ref, name)()), name
    assert x.type() == ref.type() == "torch.DoubleTensor"
    assert x.type(torch.int32).dtype is torch.int32 and x.type("torch.FloatTensor").dtype is torch.float32
    assert torch.equal(x.view(torch.int64).data, ref.view(torch.int64)) and x.view(3, 2).shape == (3, 2)
    with tg.Tape() as tape:
        total = (x.float() * 2).sum()  # a float cast is recorded: the gradient comes back as float64
    assert tape.gradient(total, [x])[0].dtype is F64


def test_sort_topk_argsort_indices_are_constants_like_torch():
    x = rand(3, 5, seed=5)
    for ours, ref in [
        (tg.sort(tg.Tensor(x), 1, descending=True), torch.sort(x, 1, descending=True)),
        (tg.Tensor(x).topk(2, 0), x.topk(2, 0)),
        (tg.Tensor(x).cummax(1), x.cummax(1)),
        (tg.Tensor(x).kthvalue(3), x.kthvalue(3)),
    ]:
        assert torch.equal(ours.values.data, ref.values) and torch.equal(ours.indices.data, ref.indices)
        assert isinstance(ours.indices, tg.Tensor) and not ours.indices.requires_grad
    assert torch.equal(tg.argsort(tg.Tensor(x), dim=0).data, torch.argsort(x, dim=0))
    with pytest.raises(ValueError, match="topk: k=6"):
        tg.topk(tg.Tensor(x), 6)


def test_bad_arguments_name_the_op():
    x = tg.Tensor(rand(3, 4))
    with pytest.raises(tg.ShapeError, match="split: sections"):
        x.split([1, 2], 1)
    with pytest.raises(TypeError, match="index_select: index must be an integer"):
        x.index_select(0, torch.tensor([0.5]))
    with pytest.raises(tg.ShapeError, match="scatter: index"):
        x.scatter(0, torch.tensor([0]), 1.0)
    with pytest.raises(ValueError, match="div: rounding_mode"):
        x.div(2, rounding_mode="up")


def test_axis_and_keepdims_are_aliases_of_dim_and_keepdim_wherever_dim_is_taken():
    x = rand(3, 4, 5, seed=6)
    t = tg.Tensor(x)
    calls = [
        (lambda m: m.sum(axis=1, keepdims=True)), (lambda m: m.mean(axis=(0, 2))), (lambda m: m.max(axis=2).values),
        (lambda m: m.cumsum(axis=0)), (lambda m: m.prod(axis=-1)), (lambda m: m.softmax(axis=1)),
        (lambda m: m.std(axis=1)), (lambda m: m.argmax(axis=0)), (lambda m: m.all(axis=1)), (lambda m: m.flip(0)),
    ]  # fmt: skip
    for call in calls:
        torch.testing.assert_close(call(t).data, call(x))
    torch.testing.assert_close(tg.sum(t, axis=0).data, torch.sum(x, axis=0))
    torch.testing.assert_close(tg.amax(t, axis=1, keepdims=True).data, torch.amax(x, axis=1, keepdims=True))
    torch.testing.assert_close(torch.logsumexp(t, axis=2).data, torch.logsumexp(x, axis=2))  # through torch's name


def test_ops_given_plain_torch_tensors_return_tapegrad_tensors():
    x = rand(3, 4, seed=7)
    t = tg.Tensor(x)
    results = [
        tg.where(t > 0, 4, 2), tg.where(x > 0, x, 0.0), tg.exp(x), tg.sum(x, axis=0), tg.split(x, 2)[1],
        tg.max(x, 1).indices, tg.sort(x).values, tg.cat([x, x]), tg.prod(x),
    ]  # fmt: skip
    for r in results:
        assert isinstance(r, tg.Tensor)
    assert torch.equal(results[0].data, torch.where(x > 0, 4, 2))
