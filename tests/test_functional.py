"""grad, value_and_grad, vjp, jacobian, hessian and their compositions, against torch.func."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from strategies import examples, floats, small_shapes

import tapegrad as tg

F64 = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func


def f_tg(x):
    return (x.tanh() * x.exp()).sum() + (x**2).mean()


def f_torch(x):
    return (x.tanh() * x.exp()).sum() + (x**2).mean()


def vec_tg(x):
    return x.sin() * x.sum() + x.softmax(-1)


def vec_torch(x):
    return x.sin() * x.sum() + x.softmax(-1)


@settings(max_examples=examples(25), deadline=None)
@given(x=small_shapes(min_dims=1, max_dims=2).flatmap(floats))
def test_grad_and_value_and_grad_match_torch_func(x):
    value, g = tg.value_and_grad(f_tg)(tg.Tensor(x))
    ref_value, ref_g = torch.func.grad_and_value(f_torch)(x)[::-1]
    torch.testing.assert_close(value.data, ref_value)
    torch.testing.assert_close(g.data, ref_g)
    torch.testing.assert_close(tg.grad(f_tg)(tg.Tensor(x)).data, ref_g)
    assert g.shape == x.shape and g.dtype == x.dtype


def test_grad_argnums():
    def f(a, b, scale):
        return (a * b).sum() * scale

    a, b = tg.tensor([1.0, 2.0], dtype=F64), tg.tensor([3.0, 4.0], dtype=F64)
    ga, gb = tg.grad(f, argnums=(0, 1))(a, b, 2.0)
    assert torch.equal(ga.data, 2 * b.data) and torch.equal(gb.data, 2 * a.data)
    assert torch.equal(tg.grad(f, argnums=1)(a, b, 2.0).data, 2 * a.data)
    assert tg.grad(lambda s, t: s * t, argnums=0)(3.0, tg.tensor(5.0)).item() == 5.0  # numbers become tensors


def test_grad_of_an_unused_argument_is_zero_and_non_scalar_raises():
    g = tg.grad(lambda a, b: (a * 2).sum(), argnums=1)(tg.tensor([1.0]), tg.tensor([2.0, 3.0]))
    assert torch.equal(g.data, torch.zeros(2))
    with pytest.raises(tg.TapeError, match="one-element"):
        tg.grad(lambda a: a * 2)(tg.tensor([1.0, 2.0]))


@pytest.mark.parametrize("power", [2, 3, 4])
def test_higher_derivatives_of_powers(power):
    x = tg.tensor(1.7, dtype=F64)
    d1 = tg.grad(lambda t: t**power)
    d2 = tg.grad(d1)
    d3 = tg.grad(d2)
    d4 = tg.grad(d3)
    expected = [power * 1.7 ** (power - 1), power * (power - 1) * 1.7 ** (power - 2)]
    expected += [power * (power - 1) * (power - 2) * 1.7 ** max(power - 3, 0) if power >= 3 else 0.0]
    expected += [24.0 if power == 4 else 0.0]
    for d, e in zip((d1, d2, d3, d4), expected):
        assert d(x).item() == pytest.approx(e, rel=1e-12, abs=1e-12)


def test_third_order_of_a_composite_matches_torch_func():
    def f(t):
        return (t.sin() * t.exp()).sum()

    x = torch.tensor(0.4, dtype=F64)
    ours = tg.grad(tg.grad(tg.grad(f)))(tg.Tensor(x))
    ref = torch.func.grad(torch.func.grad(torch.func.grad(f)))(x)
    torch.testing.assert_close(ours.data, ref)


def test_grad_of_a_constant_and_of_a_linear_function():
    x = tg.tensor([1.0, 2.0], dtype=F64)
    assert torch.equal(tg.grad(lambda t: tg.tensor(3.0, dtype=F64))(x).data, torch.zeros(2, dtype=F64))
    second = tg.grad(lambda t: tg.grad(lambda s: (s * 3).sum())(t).sum())(x)
    assert torch.equal(second.data, torch.zeros(2, dtype=F64))
    assert torch.equal(tg.hessian(lambda t: (2 * t).sum(), x).data, torch.zeros(2, 2, dtype=F64))


@settings(max_examples=examples(20), deadline=None)
@given(x=small_shapes(min_dims=1, max_dims=2).flatmap(floats))
def test_vjp_matches_torch_func(x):
    out, vjp_fn = tg.vjp(vec_tg, tg.Tensor(x))
    ref_out, ref_vjp = torch.func.vjp(vec_torch, x)
    torch.testing.assert_close(out.data, ref_out)
    v = torch.linspace(-1, 1, out.numel(), dtype=F64).reshape(out.shape)
    (ours,) = vjp_fn(tg.Tensor(v))
    torch.testing.assert_close(ours.data, ref_vjp(v)[0])
    (again,) = vjp_fn(v)  # reusable, and raw torch cotangents are accepted
    torch.testing.assert_close(again.data, ours.data)


def test_vjp_of_several_primals():
    a, b = tg.tensor([1.0, 2.0], dtype=F64), tg.tensor([0.5, -1.0], dtype=F64)
    out, vjp_fn = tg.vjp(lambda s, t: s * t.exp(), a, b)
    ga, gb = vjp_fn(tg.tensor([1.0, 1.0], dtype=F64))
    torch.testing.assert_close(ga.data, b.data.exp())
    torch.testing.assert_close(gb.data, a.data * b.data.exp())


@settings(max_examples=examples(20), deadline=None)
@given(x=small_shapes(min_dims=1, max_dims=2).flatmap(floats))
def test_jacobian_and_hessian_match_torch_func(x):
    jac = tg.jacobian(vec_tg, tg.Tensor(x))
    torch.testing.assert_close(jac.data, torch.func.jacrev(vec_torch)(x))
    hess = tg.hessian(f_tg, tg.Tensor(x))
    torch.testing.assert_close(hess.data, torch.func.hessian(f_torch)(x))
    assert hess.shape == (*x.shape, *x.shape)


def test_jacobian_of_several_inputs_and_of_a_matmul():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)
    b = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]], dtype=F64)
    ja, jb = tg.jacobian(lambda s, t: s @ t, (tg.Tensor(a), tg.Tensor(b)))
    ref_a, ref_b = torch.func.jacrev(torch.matmul, argnums=(0, 1))(a, b)
    torch.testing.assert_close(ja.data, ref_a)
    torch.testing.assert_close(jb.data, ref_b)


def test_jacobian_is_differentiable_by_an_outer_tape():
    x = tg.tensor([0.3, -0.7], dtype=F64, requires_grad=True)
    with tg.Tape() as tape:
        total = tg.jacobian(lambda t: t.tanh() * t.sum(), x).sum()
    ours = tape.gradient(total, x)
    ref_x = x.data.clone().requires_grad_()
    ref_j = torch.autograd.functional.jacobian(lambda t: t.tanh() * t.sum(), ref_x, create_graph=True)
    torch.testing.assert_close(ours.data, torch.autograd.grad(ref_j.sum(), ref_x)[0])


def test_grad_inside_an_open_tape_is_recorded_for_the_outer_tape():
    x = tg.tensor(0.9, dtype=F64, requires_grad=True)
    with tg.Tape() as tape:
        g = tg.grad(lambda t: t.sin() * t)(x)
    second = tape.gradient(g, x)
    expected = 2 * torch.cos(torch.tensor(0.9, dtype=F64)) - 0.9 * torch.sin(torch.tensor(0.9, dtype=F64))
    torch.testing.assert_close(second.data, expected)
