"""The first-order walk sums a second gradient into the first in place when only it holds the first
(as torch's engine does), and never into a tensor anything else can see."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import tapegrad as tg


class _Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.__name__)
        return func(*args, **(kwargs or {}))


def _residual_chain(x, w):
    h = x
    for _ in range(3):
        h = h + (h @ w).tanh()
    return (h * h).sum()


def test_a_residual_chain_sums_in_place_with_torchs_gradients():
    x0, w0 = torch.randn(4, 5), torch.randn(5, 5) * 0.5
    x, w = tg.Tensor(x0.clone(), requires_grad=True), tg.Tensor(w0.clone(), requires_grad=True)
    with tg.Tape() as tape:
        loss = _residual_chain(x, w)
    with _Ops() as ops:
        gx, gw = tape.gradient(loss, [x, w])
    assert ops.names.count("add_.Tensor") >= 3 and "add.Tensor" not in ops.names, ops.names
    xt, wt = x0.clone().requires_grad_(), w0.clone().requires_grad_()
    _residual_chain(xt, wt).backward()
    assert torch.equal(gx.data, xt.grad) and torch.equal(gw.data, wt.grad)


def test_shared_gradients_and_the_callers_are_not_summed_into():
    x = tg.Tensor(torch.randn(3), requires_grad=True)
    y = tg.Tensor(torch.randn(3), requires_grad=True)
    with tg.Tape(persistent=True) as tape:
        s = x + y  # add's rule hands the same gradient to x and y
        total = s + x + y.exp()  # ... and a second one to each of them
    seed = torch.full((3,), 2.0)
    kept = seed.clone()
    gx, gy = tape.gradient(total, [x, y], grad_output=tg.Tensor(seed))
    assert torch.equal(seed, kept)  # the caller's grad_output untouched
    assert torch.equal(gx.data, 2 * kept) and torch.allclose(gy.data, kept + kept * y.data.exp())
    view_of = tg.Tensor(torch.randn(2, 3), requires_grad=True)
    with tg.Tape() as tape:  # reshape's rule returns a view of the incoming gradient
        out = (view_of.reshape(6) * 3).sum() + view_of.sum()
    (g,) = tape.gradient(out, [view_of])
    assert torch.equal(g.data, torch.full((2, 3), 4.0))
