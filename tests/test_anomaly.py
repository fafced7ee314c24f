"""`tg.detect_anomaly()`: the first NaN/Inf of a forward or backward pass raises, with provenance."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch

import nn
import tapegrad as tg
from tapegrad.engine.state import current
from tapegrad.engine.tensors import wrap

F64 = torch.float64


def site(offset: int = 1) -> str:
    frame = sys._getframe(1)
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno + offset} in {frame.f_code.co_name}"


def leaf(values) -> tg.Tensor:
    return tg.Tensor(torch.tensor(values, dtype=F64), requires_grad=True)


class Log(nn.Module):
    """A module whose forward produces NaN for negative inputs."""

    def forward(self, x):
        return x.log()


class Sqrt(nn.Module):
    """Finite forward at 0, infinite gradient there."""

    def forward(self, x):
        return x.sqrt()


def test_nan_in_forward_names_op_scope_and_line():
    model = nn.Sequential(nn.Linear(2, 2, dtype=F64), nn.Tanh(), Log())
    x = tg.Tensor(torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=F64))
    with torch.no_grad():
        model[0].weight.data.copy_(-torch.eye(2, dtype=F64))  # makes one tanh output negative
        model[0].bias.data.zero_()
    with tg.detect_anomaly(), tg.Tape():
        where = site(2)
        with pytest.raises(tg.AnomalyError) as info:
            model(x)
    msg = str(info.value)
    assert msg.startswith("log produced NaN in the forward pass in 2 (Log)"), msg
    assert "(2, 2) float64 cpu" in msg
    # the innermost frame outside the library is the module's forward, in this file
    assert "test_anomaly.py:" in msg and " in forward" in msg
    assert where not in msg


def test_inf_in_forward_outside_a_module_names_the_users_line():
    x = leaf([1.0, 0.0])
    with tg.detect_anomaly():
        where = site(2)
        with pytest.raises(tg.AnomalyError) as info:
            tg.Tensor(torch.ones(2, dtype=F64)) / x
    msg = str(info.value)
    assert msg.startswith("div produced Inf in the forward pass, called at ") and where in msg


def test_nan_in_backward_names_the_op_its_scope_and_where_it_was_recorded():
    model = nn.Sequential(nn.Linear(2, 2, dtype=F64), Sqrt())
    with torch.no_grad():
        model[0].weight.data.copy_(torch.eye(2, dtype=F64))
        model[0].bias.data.zero_()
    x = tg.Tensor(torch.tensor([[0.0, 4.0]], dtype=F64))  # sqrt(0) is finite, its derivative is not
    with tg.detect_anomaly():
        with tg.Tape() as tape:
            loss = model(x).sum()
        called = site(2)
        with pytest.raises(tg.AnomalyError) as info:
            tape.backward(loss)
    msg = str(info.value)
    assert "(inside the VJP of sqrt) produced Inf in the backward pass in 1 (Sqrt)" in msg, msg
    assert "sqrt was recorded at " in msg and " in forward on inputs (1, 2) float64 cpu" in msg
    assert called in msg.split("the backward pass was called at")[1]


def test_a_vjp_that_returns_nan_directly_is_named():
    # The rule builds its result without tapegrad ops, so only the gradient check can see it.
    poisoned = tg.primitive(
        "test_anomaly_poisoned",
        lambda a: a * 3,
        [lambda g, out, a: wrap(torch.full_like(g.data if isinstance(g, tg.Tensor) else g, math.nan))],
    )
    x = leaf([1.0, 2.0])
    with tg.detect_anomaly():
        with tg.Tape() as tape:
            with tg.scope("head"):
                recorded = site(1)
                y = poisoned(x).sum()
        with pytest.raises(tg.AnomalyError) as info:
            tape.gradient(y, x)
    msg = str(info.value)
    assert msg.startswith("the VJP of test_anomaly_poisoned produced NaN in the backward pass in head;"), msg
    assert recorded in msg


def test_anomaly_in_a_second_derivative_is_named():
    x = leaf([0.0, 1.0])
    with tg.detect_anomaly():
        with tg.Tape() as outer:
            with tg.Tape() as inner:
                y = (x * x * x).sum()
            g = inner.gradient(y, x)  # 3x^2: finite
            z = g.sqrt().sum()  # sqrt(0) finite, its derivative is not
        with pytest.raises(tg.AnomalyError, match=r"inside the VJP of sqrt\) produced Inf in the backward"):
            outer.gradient(z, x)


def test_without_anomaly_mode_nan_and_inf_flow_through():
    x = leaf([-1.0, 0.0])
    with tg.Tape() as tape:
        y = x.log().sum() + x.sqrt().sum()
    g = tape.gradient(y, x)
    assert math.isnan(y.item()) and math.isinf(g.data[1].item()) and not current().anomaly


def test_anomaly_mode_is_restored_after_an_error():
    with pytest.raises(tg.AnomalyError):
        with tg.detect_anomaly():
            leaf([-1.0]).log()
    assert current().anomaly is False


def test_finite_passes_are_untouched_by_anomaly_mode():
    x = leaf([0.5, 2.0])
    with tg.detect_anomaly():
        with tg.Tape() as tape:
            y = (x.log() * x.sqrt()).sum()
        g = tape.gradient(y, x)
    expected = (1 / x.data) * x.data.sqrt() + x.data.log() / (2 * x.data.sqrt())
    assert torch.allclose(g.data, expected)
