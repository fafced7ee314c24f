"""`tapegrad.testing` for users: the strategies keep their promises, and a custom primitive's VJP is
checked (this file is the worked example: copy it for your own ops)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import examples

import tapegrad as tg
from tapegrad.testing import assert_gradients_match, broadcastable_shapes, shapes, tensors

# --- the worked example: a custom primitive, tested like the built-in ones -------------------------
# softplus(x) = log(1 + e^x), computed stably; its derivative is sigmoid(x). The VJP is written with
# tapegrad ops (and operators shared with torch), so second derivatives come for free.
softplus = tg.primitive(
    "test_testing_softplus",
    lambda x: torch.logaddexp(x, torch.zeros_like(x)),
    [lambda g, out, x: g * tg.sigmoid(x)],
    "softplus(x) = log(1 + exp(x)).",
)
# The same op with a classic mistake: the derivative of log(1 + e^x) taken as e^x / (1 + e^x)^2.
bad_softplus = tg.primitive(
    "test_testing_bad_softplus",
    lambda x: torch.logaddexp(x, torch.zeros_like(x)),
    [lambda g, out, x: g * tg.sigmoid(x) * (1 - tg.sigmoid(x))],
)
# Right first derivative, but the VJP reads the data (x.data): invisible to an outer tape, so the
# second derivative is wrong. Only order=2 catches it.
detached_softplus = tg.primitive(
    "test_testing_detached_softplus",
    lambda x: torch.logaddexp(x, torch.zeros_like(x)),
    [lambda g, out, x: g * torch.sigmoid(x.data if isinstance(x, tg.Tensor) else x)],
)


@settings(max_examples=examples(30), deadline=None)
@given(x=tensors(shape=shapes(max_dims=2), low=-3.0, high=3.0))
def test_custom_primitive_gradients(x):
    assert_gradients_match(softplus, x, order=2)


@settings(max_examples=examples(10), deadline=None)
@given(x=tensors(shape=(3,), low=-3.0, high=3.0))
def test_a_wrong_vjp_is_caught(x):
    with pytest.raises(tg.GradcheckError, match=r"with respect to input 0 at index \(\d,\)"):
        assert_gradients_match(bad_softplus, x)
    with pytest.raises(tg.GradcheckError, match=r"with respect to input 0 at index \(\d,\)"):
        tg.gradcheck(lambda t: bad_softplus(t).sum(), [x])


def test_a_vjp_that_detaches_is_caught_at_second_order():
    x = tg.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)
    assert_gradients_match(detached_softplus, x)  # first order is right
    with pytest.raises(tg.GradcheckError, match="input 0 at index"):
        assert_gradients_match(detached_softplus, x, order=2)


def test_assert_gradients_match_with_several_inputs_and_linear_functions():
    a = tg.tensor([[0.5, -1.0], [2.0, 0.3]], dtype=torch.float64)
    b = tg.tensor([1.5, -0.2], dtype=torch.float64)
    assert_gradients_match(lambda x, y: (x @ y).tanh() * y, a, b, order=2)
    assert_gradients_match(lambda x: x * 2 + 1, b, order=2)  # the second derivative is zero


# --- the strategies do what they promise ------------------------------------------------------------
@settings(max_examples=examples(50), deadline=None)
@given(shape=shapes(min_dims=1, max_dims=3, min_side=2, max_side=5))
def test_shapes_respect_their_bounds(shape):
    assert isinstance(shape, tuple) and 1 <= len(shape) <= 3
    assert all(isinstance(s, int) and 2 <= s <= 5 for s in shape)


@settings(max_examples=examples(50), deadline=None)
@given(data=st.data())
def test_broadcastable_shapes_broadcast(data):
    shape = data.draw(shapes())
    other = data.draw(broadcastable_shapes(shape, max_dims=4))
    assert len(other) <= 4
    result = torch.broadcast_shapes(shape, other)  # raises if they do not broadcast
    assert result[len(result) - len(shape) :] == torch.Size(shape) or len(other) > len(shape)


@settings(max_examples=examples(50), deadline=None)
@given(data=st.data())
def test_tensors_respect_shape_dtype_bounds_and_kinks(data):
    shape = data.draw(shapes(max_dims=3))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    x = data.draw(tensors(shape=shape, dtype=dtype, low=-1.0, high=1.0, away_from=(0.0, 0.5), margin=0.05))
    assert isinstance(x, tg.Tensor) and x.shape == shape and x.dtype == dtype and not x.requires_grad
    values = x.data.double()
    assert bool(((values >= -1.0) & (values <= 1.0)).all())
    assert bool(((values.abs() >= 0.05 - 1e-7) & ((values - 0.5).abs() >= 0.05 - 1e-7)).all())
    assert not x.data.isnan().any()


@settings(max_examples=examples(20), deadline=None)
@given(x=tensors(shape=shapes(), requires_grad=True))
def test_tensors_can_require_grad(x):
    assert x.requires_grad and x.dtype == torch.float64 and math.prod(x.shape) == x.numel()
