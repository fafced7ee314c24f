"""tg.custom_vjp: hand-written VJPs with residuals (jax.custom_vjp's shape), checked by tapegrad.testing."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from strategies import F64, examples, floats, small_shapes

import tapegrad as tg
from tapegrad.testing import assert_gradients_match

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func


@tg.custom_vjp
def stable_lse(x):
    """log(sum(exp(x))) over the last dimension, shifted by the maximum so that it never overflows."""
    m = x.max(dim=-1, keepdim=True).values
    return (x - m).exp().sum(-1).log() + m.reshape(m.shape[:-1])


def stable_lse_fwd(x):
    out = stable_lse.fun(x)
    return out, (x, out)  # residuals: the input and the output


def stable_lse_bwd(residuals, g):
    x, out = residuals
    softmax = (x - out.reshape((*out.shape, 1))).exp()  # never exp of a large number
    return (softmax * g.reshape((*g.shape, 1)),)


stable_lse.defvjp(stable_lse_fwd, stable_lse_bwd)


@tg.custom_vjp
def clip_gradient(x, bound):
    """The identity, whose gradient is clipped to [-bound, bound] on the way back."""
    return x * 1.0


def clip_gradient_fwd(x, bound):
    return x * 1.0, bound


def clip_gradient_bwd(bound, g):
    return (g.clamp(-bound, bound), None)


clip_gradient.defvjp(clip_gradient_fwd, clip_gradient_bwd)


@settings(max_examples=examples(20), deadline=None)
@given(x=small_shapes(min_dims=1, max_dims=3).flatmap(lambda s: floats(s, -3.0, 3.0)))
def test_stable_logsumexp_matches_finite_differences_to_second_order(x):
    assert_gradients_match(stable_lse, tg.Tensor(x), order=2)


def test_stable_logsumexp_equals_torch_and_stays_finite_where_the_naive_rule_overflows():
    x = torch.tensor([[1000.0, 999.0, 998.0], [-3.0, 0.5, 2.0]], dtype=F64)
    xs = tg.Tensor(x, requires_grad=True)
    with tg.Tape() as tape:
        y = stable_lse(xs)
        loss = (y * tg.tensor([1.0, 2.0], dtype=F64)).sum()
    (record,) = [r for r in tape.records if r.primitive.name == "stable_lse"]
    assert len(record.inputs) == 1
    grad = tape.gradient(loss, xs)
    tx = x.clone().requires_grad_()
    ref_y = torch.logsumexp(tx, -1)
    (ref,) = torch.autograd.grad((ref_y * torch.tensor([1.0, 2.0], dtype=F64)).sum(), tx)
    torch.testing.assert_close(y.data, ref_y.detach())
    torch.testing.assert_close(grad.data, ref)
    assert torch.isfinite(grad.data).all()
    assert not torch.isfinite(x.exp().sum(-1).log()).all()  # what the naive formula gives


def test_clipped_gradient():
    x = torch.tensor([0.5, -2.0, 3.0], dtype=F64)
    assert_gradients_match(lambda a: clip_gradient(a, 1.0), tg.Tensor(x))  # unit cotangents: no clipping
    xs = tg.Tensor(x, requires_grad=True)
    with tg.Tape() as tape:
        loss = (clip_gradient(xs, 1.0) * tg.tensor([10.0, -0.5, -7.0], dtype=F64)).sum()
    assert torch.equal(tape.gradient(loss, xs).data, torch.tensor([1.0, -0.5, -1.0], dtype=F64))


def test_jvp_and_the_primal_without_a_tape():
    x = torch.tensor([[0.3, -1.0, 2.0]], dtype=F64)
    t = torch.tensor([[1.0, 0.5, -0.2]], dtype=F64)
    _, ours = tg.jvp(stable_lse, (tg.Tensor(x),), (tg.Tensor(t),))
    _, ref = torch.func.jvp(lambda a: torch.logsumexp(a, -1), (x,), (t,))
    torch.testing.assert_close(ours.data, ref)
    calls = []

    @tg.custom_vjp
    def double(a):
        calls.append("fun")
        return a * 2

    double.defvjp(lambda a: (calls.append("fwd") or a * 2, None), lambda res, g: (g * 2,))
    double(tg.Tensor(x))
    with tg.Tape() as tape:
        xs = tg.Tensor(x, requires_grad=True)
        y = double(xs).sum()
    assert calls == ["fun", "fwd"]
    assert torch.equal(tape.gradient(y, xs).data, torch.full_like(x, 2.0))
    assert double.__name__ == "double" and "custom_vjp double" in repr(double)


# --- bad input -------------------------------------------------------------------------------------
def scaled(x, y):
    return x * y


def grad_of(f, *xs):
    leaves = [tg.Tensor(x, requires_grad=True) for x in xs]
    with tg.Tape() as tape:
        out = f(*leaves).sum()
    return tape.gradient(out, leaves)


def test_backward_returning_the_wrong_number_of_gradients():
    f = tg.custom_vjp(scaled)
    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1],))
    expected = (
        r"custom_vjp\(scaled\): backward <lambda> returned 1 gradient for 2 arguments "
        r"\(0 \(x\): \(2, 3\), 1 \(y\): \(2, 3\)\)"
    )
    with pytest.raises(ValueError, match=expected):
        grad_of(f, torch.ones(2, 3), torch.ones(2, 3))


def test_backward_returning_a_gradient_of_the_wrong_shape():
    def scaled_bwd(res, g):
        return g * res[1], (g * res[0]).sum(0)

    f = tg.custom_vjp(scaled)
    f.defvjp(lambda x, y: (x * y, (x, y)), scaled_bwd)
    expected = r"custom_vjp\(scaled\): backward scaled_bwd returned a gradient of shape \(3,\) for argument 1 \(y\) of shape \(2, 3\)"  # noqa: E501
    with pytest.raises(ValueError, match=expected):
        grad_of(f, torch.ones(2, 3), torch.ones(2, 3))


def test_backward_returning_a_bare_tensor_and_forward_without_residuals():
    f = tg.custom_vjp(scaled)
    f.defvjp(lambda x, y: (x * y, None), lambda res, g: g)
    with pytest.raises(
        TypeError, match=r"custom_vjp\(scaled\): backward <lambda> returned Tensor; it must return a tuple"
    ):
        grad_of(f, torch.ones(2), torch.ones(2))
    g = tg.custom_vjp(scaled)
    g.defvjp(lambda x, y: x * y, lambda res, g: (g, g))
    with pytest.raises(TypeError, match=r"forward <lambda> must return \(output tg.Tensor, residuals\), got Tensor"):
        grad_of(g, torch.ones(2), torch.ones(2))
    h = tg.custom_vjp(scaled)
    with pytest.raises(TypeError, match=r"custom_vjp\(scaled\): no VJP defined; call scaled.defvjp\(fwd, bwd\)"):
        h(tg.tensor([1.0]), tg.tensor([2.0]))


def test_traced_step_with_a_custom_vjp_matches_the_rule():
    @tg.custom_vjp
    def square(v):
        return v * v

    square.defvjp(lambda v: (v * v, v), lambda v, g: (g * 2 * v,))
    w = tg.Tensor(torch.tensor([0.5, -1.0, 2.0], dtype=F64), requires_grad=True)
    traced = tg.trace(lambda a: square(a * w).sum())
    for seed in range(3):  # new inputs each call: the residuals come from each replay's forward
        a = tg.Tensor(torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=F64))
        w.grad = None
        traced(a)
        torch.testing.assert_close(w.grad.data, 2 * (a.data * w.data) * a.data)
    assert traced.traces == 1
