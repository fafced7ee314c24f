"""`saves=`: a record keeps only the tensors its primitive's VJP reads."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import tapegrad as tg
from tapegrad.engine.release import Released, keep_all

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
        h = plus(x, x)  # saves nothing; softplus below saves its output only: nothing reads h's values
        ref = weakref.ref(h.data)
        y = softplus(h).sum()
        del h
    gc.collect()
    assert ref() is None  # released when the tape closed: only its records held h
    assert isinstance(tape.records[1].inputs[0].data, Released)
    assert "released (5,) float32" in repr(tape.records[1].inputs[0].data)
    y.backward()
    torch.testing.assert_close(x.grad.data, 2 * torch.sigmoid(2 * x.data))


def test_the_forward_releases_as_it_goes_and_keeps_what_the_user_holds():
    x = tg.tensor(torch.randn(1000), requires_grad=True)
    refs = []
    with tg.Tape():
        h = x
        for i in range(200):
            h = plus(h, x)  # saves nothing: each h is released once the next one replaces it
            refs.append(weakref.ref(h.data))
            if i == 100:
                held = h
        alive_before_exit = sum(r() is not None for r in refs)
        loss = h.sum()
    assert alive_before_exit < 100  # swept during the forward, not only at the end
    assert isinstance(held.data, torch.Tensor) and refs[100]() is not None
    loss.backward()
    torch.testing.assert_close(x.grad.data, torch.full((1000,), 201.0))


def test_a_tensor_a_later_record_saves_is_kept():
    x = tg.tensor(torch.randn(4), requires_grad=True)
    with tg.Tape() as tape:
        h = plus(x, x)
        y = cube(h).sum()  # cube saves its input: h's values stay
        del h
    gc.collect()
    assert isinstance(tape.records[0].output.data, torch.Tensor)
    y.backward()
    torch.testing.assert_close(x.grad.data, 2 * 3 * (2 * x.data) ** 2)


def test_tools_that_read_values_keep_everything():
    x = tg.tensor(torch.randn(4), requires_grad=True)
    with keep_all(tg.Tape(persistent=True)) as outer:
        with tg.Tape() as inner:  # inside a tape that keeps everything: keeps everything too
            y = softplus(plus(x, x)).sum()
    assert all(isinstance(r.output.data, torch.Tensor) for r in outer.records)
    inner.backward(y)


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
