"""`tg.gradcheck`: central differences in float64 with PyTorch's defaults, and errors that name the spot."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import tapegrad as tg
from tapegrad.transforms.gradchecking import analytical_jacobian, numerical_jacobian

F64 = torch.float64

# A VJP that is wrong only at the second element of its input.
off_at_one = tg.primitive(
    "test_gradcheck_off_at_one",
    lambda x: x * x,
    [lambda g, out, x: g * 2 * x * (1 + (torch.arange(x.numel()).reshape(x.shape) == 1).to(x.dtype))],
)


def test_defaults_are_pytorchs():
    params = inspect.signature(tg.gradcheck).parameters
    assert (params["eps"].default, params["atol"].default, params["rtol"].default) == (1e-6, 1e-5, 1e-3)


def test_passes_on_correct_gradients_and_accepts_torch_or_tg_inputs():
    a = torch.tensor([[0.3, -1.2], [2.0, 0.7]], dtype=F64)
    assert tg.gradcheck(lambda x, y: (x @ y).tanh(), [a, tg.Tensor(a.T.clone())]) is True
    assert tg.gradcheck(lambda x: x.exp().sum(), a) is True  # a single tensor as inputs


def test_error_names_the_input_the_index_and_both_values():
    x = torch.tensor([[0.5, 1.5, -0.5]], dtype=F64)
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(lambda a, b: a * 2 + off_at_one(b), [x.clone(), x.clone()])
    msg = str(info.value)
    assert "with respect to input 1 at index (0, 1)" in msg
    assert "numerical 3" in msg and "analytical 6" in msg  # d(b^2)/db at 1.5: 3, the rule says 6
    assert "test_gradcheck_off_at_one" in msg  # the blame names the primitive
    assert isinstance(info.value, AssertionError)


def test_inputs_are_converted_to_float64_and_left_untouched():
    seen = []
    x = torch.tensor([1.0, 2.0], dtype=torch.float32)
    before = x.clone()
    tg.gradcheck(lambda t: seen.append(t.dtype) or (t * t).sum(), [x])
    assert set(seen) == {F64}
    assert torch.equal(x, before) and x.dtype == torch.float32


def test_jacobians_have_output_by_input_shape():
    x = torch.tensor([0.1, 0.2, 0.3], dtype=F64)
    (num,) = numerical_jacobian(lambda t: t[:2] * 3, [x])
    (ana,) = analytical_jacobian(lambda t: t[:2] * 3, [tg.Tensor(x)])
    expected = torch.tensor([[3.0, 0, 0], [0, 3.0, 0]], dtype=F64)
    torch.testing.assert_close(num, expected)
    assert torch.equal(ana, expected)


def test_functions_returning_views_or_constants():
    x = torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=F64)
    assert tg.gradcheck(lambda t: t.reshape(4), [x])  # the output aliases the input
    assert tg.gradcheck(lambda t: t.T, [x])
    assert tg.gradcheck(lambda t: tg.tensor([1.0, 2.0], dtype=F64), [x])  # constant: zero Jacobian both ways


def test_tolerances_decide():
    x = torch.tensor([math.pi / 2], dtype=F64)  # cos(x) = 0: only atol can absorb the error
    slightly_off = tg.primitive("test_gradcheck_slightly_off", torch.sin, [lambda g, out, x: g * (x.cos() + 1e-4)])
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(slightly_off, [x])
    assert tg.gradcheck(slightly_off, [x], atol=1e-3)
