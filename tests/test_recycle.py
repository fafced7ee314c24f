"""The recycled weight-gradient buffers of wide layers: reused once nothing holds them, never
while a gradient, a view of it or a trace can still see them; the values are torch's product."""

from __future__ import annotations

import warnings

import torch

import tapegrad as tg
from tapegrad.ops import _recycle


def wide_step(w: tg.Tensor, x: torch.Tensor) -> torch.Tensor:
    with tg.Tape() as tape:
        loss = tg.linear(tg.Tensor(x), w).tanh().sum()
    tape.backward(loss)
    return w.grad.data


def expected(w: tg.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (1 - torch.tanh(x @ w.data.T) ** 2).mT @ x


def setup():
    torch.manual_seed(0)
    return tg.Tensor(torch.randn(256, 256) * 0.05, requires_grad=True), torch.randn(10, 256)


def test_a_dropped_gradient_buffer_is_written_again_with_the_right_values(monkeypatch):
    w, x = setup()
    first = wide_step(w, x).data_ptr()
    w.grad = None  # what zero_grad does: nothing holds the buffer any more
    x2 = torch.randn(10, 256)
    grad = wide_step(w, x2)
    assert grad.data_ptr() == first
    torch.testing.assert_close(grad, expected(w, x2), rtol=1e-5, atol=1e-6)
    w.grad = None
    monkeypatch.setattr(_recycle, "_MIN_BYTES", 1 << 40)  # no recycling: the same kernel's product
    assert torch.equal(wide_step(w, x2), grad)


def test_a_held_gradient_or_a_view_of_it_is_never_overwritten():
    w, x = setup()
    held = wide_step(w, x)
    kept = held.clone()
    w.grad = None
    second = wide_step(w, torch.randn(10, 256))
    assert second.data_ptr() != held.data_ptr() and torch.equal(held, kept)
    view = second.view(-1)
    kept = view.clone()
    del second
    w.grad = None
    third = wide_step(w, torch.randn(10, 256))
    assert third.data_ptr() != view.data_ptr() and torch.equal(view, kept)


def test_small_products_and_tracing_get_fresh_tensors():
    a, b = torch.randn(8, 10), torch.randn(10, 8)
    kept = [_recycle.mm(a, b)]
    del kept[0]
    assert not any(k[0] == 8 for k in getattr(_recycle._LOCAL, "pool", {}))  # small: plain a @ b
    big_a, big_b = torch.randn(256, 10), torch.randn(10, 256)
    first = _recycle.mm(big_a, big_b)
    ptr = first.data_ptr()
    del first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace's own notice
        traced = torch.jit.trace(lambda p, q: _recycle.mm(p, q), (big_a, big_b), check_trace=False)
    out = traced(big_a, big_b)
    assert out.data_ptr() != ptr  # the trace did not bake the pooled buffer in
    torch.testing.assert_close(out, big_a @ big_b, rtol=0, atol=0)
