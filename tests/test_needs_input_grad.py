"""The walk tells a rule of all inputs which gradients it uses (``needs_input_grad``, torch's ctx field).

A rule that names the keyword gets a list of bools, one per input; the fused Linear + activation rule
reads it to skip a first layer's input gradient. Checked: the masks each kind of walk passes (first
order, sources, higher order), that rules without the keyword are called as before, that a skipped
gradient is never computed (the products a backward runs, counted below autograd), and that every
gradient still computed is the same bit for bit.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import tapegrad as tg
import tapegrad.nn as nn
from tapegrad.engine.declaration import takes_mask
from tapegrad.ops.fused_linear import FUSED_WITH_LINEAR

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


# --- the fused Linear + activation: a first layer's input gradient is never computed ----------------
class _Products(TorchDispatchMode):
    """Counts the matrix products (and their shapes) that run while it is on."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.mm.default:
            self.shapes.append(tuple(out.shape))
        return out


def _seed_model(fuse: bool) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 2), nn.Tanh(), fuse=fuse
    )  # fmt: skip


def _step(model: nn.Sequential, x: tg.Tensor, y: torch.Tensor) -> tuple[list[torch.Tensor], list]:
    with tg.Tape():
        loss = nn.MSELoss()(model(x), y)
    with _Products() as products:
        loss.backward()
    return [p.grad.data for p in model.parameters()], products.shapes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_first_layer_skips_the_batch_gradient_and_keeps_the_others_bit_for_bit(dtype):
    x, y = torch.randn(7, 2, dtype=dtype), torch.randn(7, 2, dtype=dtype)
    unfused, fused = _seed_model(False).to(dtype), _seed_model(True).to(dtype)
    expected, _ = _step(unfused, tg.Tensor(x), y)
    got, products = _step(fused, tg.Tensor(x), y)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    # three weight gradients, and the input gradients of layers 2 and 3 only: no (7, 2) product
    assert sorted(products) == sorted([(2, 5), (5, 5), (5, 2), (7, 5), (7, 5)])
    # with the batch requiring grad, its gradient is computed too, and the others are unchanged
    fused.zero_grad()
    xg = tg.Tensor(x, requires_grad=True)
    again, products = _step(fused, xg, y)
    assert all(torch.equal(a, b) for a, b in zip(got, again))
    assert (7, 2) in products and xg.grad is not None


def test_fused_rules_called_without_the_mask_compute_every_gradient():
    prim = FUSED_WITH_LINEAR["linear_tanh"]
    x, w, b = torch.randn(4, 3), torch.randn(2, 3), torch.randn(2)
    out, g = prim.forward(x, w, b), torch.randn(4, 2)
    full = prim.fast_vjp(g, out, x, w, b)
    assert all(isinstance(t, torch.Tensor) for t in full)
    masked = prim.fast_vjp(g, out, x, w, b, needs_input_grad=(False, True, False))
    assert masked[0] is None and masked[2] is None and torch.equal(masked[1], full[1])
    reference = prim.vjp(g, out, x, w, b, needs_input_grad=(False, False, True))
    assert reference[:2] == (None, None) and torch.equal(reference[2], full[2])
