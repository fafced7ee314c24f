"""`saves=`: a record keeps only the tensors its primitive's VJP reads."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import tapegrad as tg
from tapegrad.release import Released

cube = tg.primitive("test_saves_cube", lambda x: x**3, [lambda g, out, x: g * 3 * x * x], saves=(0,))
# reads only its output; its input is a tg.Tensor on the fast path (metadata only)
softplus = tg.primitive(
    "test_saves_softplus",
    lambda x: x.exp().log1p(),
    [lambda g, out, x: g * (1 - (-out).exp())],
    saves=["output"],
)
plus = tg.primitive("test_saves_plus", lambda x, y: x + y, [lambda g, out, x, y: g, lambda g, out, x, y: g], saves=())


def test_unsaved_input_is_not_held_by_the_record():
    x = tg.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    with tg.Tape() as tape:
        h = cube(x)
        y = softplus(h)
        loss = plus(y, y).sum()
    r_soft, r_plus = tape.records[1], tape.records[2]
    assert r_soft.args[0] is h  # the tensor itself, not its data: only its metadata is kept
    assert r_plus.args == [y, y]
    assert tape.records[0].args[0] is x.data
    loss.backward()
    want = 2 * torch.sigmoid(x.data**3) * 3 * x.data**2
    torch.testing.assert_close(x.grad.data, want)


def test_unsaved_data_is_freed_once_the_user_drops_it():
    x = tg.tensor(torch.randn(5), requires_grad=True)
    with tg.Tape() as tape:
        h = plus(x, x)
        ref = weakref.ref(h.data)
        y = softplus(h).sum()
        del h
    gc.collect()
    r = tape.records[1]
    r.inputs[0].data = Released(r.inputs[0].data)  # what the sweep does, by hand: nothing else holds it
    assert ref() is None
    y.backward()
    torch.testing.assert_close(x.grad.data, 2 * torch.sigmoid(2 * x.data))


def test_second_order_through_saved_tensors():
    x = tg.tensor([0.3, 1.2], dtype=torch.float64, requires_grad=True)
    (gx,) = tg.grad(lambda t: tg.grad(lambda u: softplus(cube(u)).sum())(t).sum(), argnums=(0,))(x)
    ref = x.data.clone().requires_grad_()
    (g1,) = torch.autograd.grad(torch.nn.functional.softplus(ref**3).sum(), ref, create_graph=True)
    (g2,) = torch.autograd.grad(g1.sum(), ref)
    torch.testing.assert_close(gx.data, g2)


def test_in_place_change_of_a_saved_tensor_raises_and_of_an_unsaved_one_does_not():
    x = tg.tensor([0.5, 1.0], requires_grad=True)
    with tg.Tape(persistent=True) as tape:
        h = cube(x)
        y = softplus(h)  # saves its output only: h may change
    h.data.add_(1.0)
    tape.gradient(y, h, grad_output=tg.tensor([1.0, 1.0]))
    y.data.mul_(2.0)  # softplus saved its output
    with pytest.raises(tg.InPlaceError, match="test_saves_softplus"):
        tape.gradient(y, h, grad_output=tg.tensor([1.0, 1.0]))


@pytest.mark.parametrize("bad", [(-1,), ("out",), (1.5,), (True,)])
def test_bad_saves_name_the_primitive(bad):
    with pytest.raises(ValueError, match="test_saves_bad"):
        tg.primitive("test_saves_bad", torch.neg, [lambda g, out, x: -g], saves=bad)
