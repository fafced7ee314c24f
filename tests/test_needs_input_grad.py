"""The walk tells a rule of all inputs which gradients it uses (``needs_input_grad``, torch's ctx field).

A rule that names the keyword gets a list of bools, one per input. Checked: the masks each kind of walk
passes (first order, sources, higher order), that rules without the keyword are called as before, that
a skipped gradient is never computed (the products a backward runs, counted below autograd), and that
every gradient still computed is the same bit for bit.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import tapegrad as tg
from tapegrad.engine.declaration import takes_mask

SEEN: list[Any] = []


def _scale_forward(x: torch.Tensor, w: torch.Tensor, c: float) -> torch.Tensor:
    return x * w * c


def _scale_vjp(g: Any, out: Any, x: Any, w: Any, c: float, *, needs_input_grad: Any = None) -> tuple:
    SEEN.append(needs_input_grad)
    need = needs_input_grad or (True, True, True)
    return (g * w * c if need[0] else None), (g * x * c if need[1] else None), None


def _plain_vjp(g: Any, out: Any, x: Any, w: Any, c: float, **params: Any) -> tuple:
    SEEN.append(sorted(params))  # a rule without the keyword (even one taking **params) never gets it
    return g * w * c, g * x * c, None


scaled = tg.primitive("test_mask_scaled", _scale_forward, _scale_vjp, fast_vjp=_scale_vjp)
plain = tg.primitive("test_mask_plain", _scale_forward, _plain_vjp, fast_vjp=_plain_vjp)


def _leaves(x_grad: bool, w_grad: bool) -> tuple[tg.Tensor, tg.Tensor]:
    x = tg.Tensor(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), requires_grad=x_grad)
    w = tg.Tensor(torch.tensor([0.5, -1.0, 4.0], dtype=torch.float64), requires_grad=w_grad)
    return x, w


@pytest.mark.parametrize("x_grad,w_grad", [(True, True), (True, False), (False, True)])
def test_backward_passes_which_inputs_require_grad(x_grad, w_grad):
    x, w = _leaves(x_grad, w_grad)
    SEEN.clear()
    with tg.Tape():
        loss = scaled(x, w, 2.0).sum()
    loss.backward()
    assert SEEN == [[x_grad, w_grad, False]]  # the number is no tensor: never needed
    assert (x.grad is None) != x_grad and (w.grad is None) != w_grad
    if x_grad:
        assert torch.equal(x.grad.data, w.data * 2.0)
    if w_grad:
        assert torch.equal(w.grad.data, x.data * 2.0)


def test_a_raw_torch_input_is_never_needed_even_when_torch_tracks_it():
    x, _ = _leaves(True, False)
    w = torch.tensor([0.5, -1.0, 4.0], dtype=torch.float64, requires_grad=True)  # not a tg.Tensor: no gradient here
    SEEN.clear()
    with tg.Tape():
        loss = scaled(x, w, 2.0).sum()
    loss.backward()
    assert SEEN == [[True, False, False]] and torch.equal(x.grad.data, w.detach() * 2.0)


def test_gradient_passes_only_the_inputs_leading_to_the_sources():
    x, w = _leaves(True, True)
    with tg.Tape(persistent=True) as tape:
        loss = scaled(x, w, 3.0).sum()
    for sources, mask in (([w], [False, True, False]), ([x], [True, False, False]), ([x, w], [True, True, False])):
        SEEN.clear()
        grads = tape.gradient(loss, sources)
        assert SEEN == [mask]
        for s, g in zip(sources, grads):
            assert torch.equal(g.data, (w.data if s is x else x.data) * 3.0)


def test_higher_order_passes_the_mask_to_the_reference_rule():
    x, w = _leaves(True, False)
    with tg.Tape() as outer:
        with tg.Tape() as inner:
            y = scaled(x, w, 1.0)
            loss = (y * y).sum()
        SEEN.clear()
        (gx,) = inner.gradient(loss, [x])  # recorded on the outer tape: the reference rule on tg.Tensors
        assert SEEN == [[True, False, False]]
        total = gx.sum()
    (hx,) = outer.gradient(total, [x])
    torch.testing.assert_close(hx.data, 2 * w.data * w.data)  # d/dx sum(2 x w^2)


def test_rules_without_the_keyword_are_called_as_before():
    assert takes_mask(_scale_vjp) and not takes_mask(_plain_vjp) and not takes_mask(None)
    assert not takes_mask(len)  # a builtin: no signature Python reads, so no mask
    x, w = _leaves(True, False)
    SEEN.clear()
    with tg.Tape():
        loss = plain(x, w, 2.0).sum()
    loss.backward()
    assert SEEN == [[]] and torch.equal(x.grad.data, w.data * 2.0)


# --- a skipped gradient is never computed; the ones computed are unchanged bit for bit ----------------
class _Products(TorchDispatchMode):
    """Records the shapes of the matrix products that run while it is on."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.mm.default:
            self.shapes.append(tuple(out.shape))
        return out


def _mm_vjp(g: Any, out: Any, x: Any, w: Any, *, needs_input_grad: Any = None) -> tuple:
    need = needs_input_grad or (True, True)
    return (torch.mm(g, w.mT) if need[0] else None), (torch.mm(x.mT, g) if need[1] else None)


product = tg.primitive("test_mask_mm", torch.mm, lambda g, out, x, w: (g @ w.mT, x.mT @ g), fast_vjp=_mm_vjp)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_skipped_gradient_is_never_computed_and_the_others_are_bit_for_bit(dtype):
    xd, wd = torch.randn(7, 3, dtype=dtype), torch.randn(3, 4, dtype=dtype)
    g = torch.ones(7, 4, dtype=dtype)
    full = _mm_vjp(g, None, xd, wd)  # called without the mask: every gradient
    x, w = tg.Tensor(xd), tg.Tensor(wd, requires_grad=True)
    with tg.Tape():
        loss = product(x, w).sum()
    with _Products() as products:
        loss.backward()
    assert products.shapes == [(3, 4)]  # the weight's product only: no (7, 3) product for the batch
    assert torch.equal(w.grad.data, full[1])
    xg = tg.Tensor(xd, requires_grad=True)
    with tg.Tape() as tape:
        loss = product(xg, w).sum()
    with _Products() as products:
        gx, gw = tape.gradient(loss, [xg, w])
    assert sorted(products.shapes) == [(3, 4), (7, 3)]
    assert torch.equal(gx.data, full[0]) and torch.equal(gw.data, full[1])
