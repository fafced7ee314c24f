"""Tape semantics: what is recorded where, one-shot vs persistent replays, accumulation, deep chains."""

from __future__ import annotations

import gc
import math
import weakref

import pytest
import torch

import tapegrad as tg

F64 = torch.float64


def leaf(*values: float, requires_grad: bool = True) -> tg.Tensor:
    return tg.Tensor(torch.tensor(values, dtype=F64), requires_grad=requires_grad)


def names(tape: tg.Tape) -> list[str]:
    return [r.primitive.name for r in tape]


# --- recording --------------------------------------------------------------------------------
def test_records_are_plain_data_in_order():
    x = leaf(1.0, 2.0)
    with tg.Tape() as tape:
        y = x.exp()
        z = (y * x).sum()
    assert names(tape) == ["exp", "mul", "sum"]
    assert len(tape) == 3 and len(tape.records) == 3
    first = tape.records[0]
    assert first.inputs == (x,) and first.output is y and first.params == {}
    assert tape.records[-1].output is z
    assert "test_tape.py" in first.call_site


def test_nested_tapes_both_record_and_inner_only_sees_its_span():
    x = leaf(0.5)
    with tg.Tape() as outer:
        a = x.sin()
        with tg.Tape() as inner:
            b = a.exp()
        c = b * 2
    assert names(outer) == ["sin", "exp", "mul"]
    assert names(inner) == ["exp"]
    assert inner.records[0] is outer.records[1]  # the same record on every tape that watches
    assert c.data.item() == pytest.approx(2 * torch.exp(torch.sin(torch.tensor(0.5))).item())


def test_unwatched_tensors_are_not_recorded_and_watch_adds_them():
    x = tg.tensor([1.0, 2.0])  # requires_grad=False
    with tg.Tape() as tape:
        y = x * 3
    assert len(tape) == 0 and not y.requires_grad
    with tg.Tape() as tape:
        tape.watch(x)
        y = (x * 3).sum()
    assert names(tape) == ["mul", "sum"]
    assert not y.requires_grad  # watching records, it does not make outputs require grad
    assert torch.equal(tape.gradient(y, x).data, torch.full((2,), 3.0))


def test_watch_is_per_tape():
    x = tg.tensor([1.0])
    with tg.Tape() as outer:
        with tg.Tape() as inner:
            inner.watch(x)
            x.exp()
    assert len(inner) == 1 and len(outer) == 0


def test_watch_rejects_non_float_tensors():
    with tg.Tape() as tape, pytest.raises(TypeError, match="floating point"):
        tape.watch(tg.Tensor(torch.tensor([1, 2])))


def test_stop_recording_pauses_only_that_tape():
    x = leaf(1.0)
    with tg.Tape() as outer:
        with tg.Tape() as inner:
            with inner.stop_recording():
                y = x.exp()
            z = y.sin()
    assert names(inner) == ["sin"]
    assert names(outer) == ["exp", "sin"]
    assert z.requires_grad


def test_no_grad_records_nothing_and_outputs_do_not_require_grad():
    x = leaf(1.0)
    with tg.Tape() as tape:
        with tg.no_grad():
            y = x.exp()
            with tg.enable_grad():
                w = x.sin()
        z = x.cos()
    assert not y.requires_grad and w.requires_grad and z.requires_grad
    assert names(tape) == ["sin", "cos"]  # enable_grad inside no_grad records again, as torch does
    assert tape.gradient(w, x).item() == pytest.approx(math.cos(1.0))


def test_ops_without_tape_return_tensors_and_record_nothing():
    x = leaf(1.0, 2.0)
    y = x * 2
    assert isinstance(y, tg.Tensor) and y.requires_grad and y.is_leaf
    assert torch.equal(tg.exp(torch.zeros(2)), torch.ones(2))  # raw torch in, raw torch out


def test_records_carry_the_scope():
    x = leaf(1.0)
    with tg.Tape() as tape:
        y = x.exp()
        with tg.scope("encoder") as enc:
            with tg.scope("0", module=torch) as inner:
                z = y.sin()
            w = z.cos()
    assert [r.scope for r in tape] == [None, inner, enc]
    assert inner.path == "encoder.0" and inner.parent is enc and inner.name == "0"
    assert inner.type_name == "module" and enc.type_name == ""
    assert w.requires_grad


# --- replay -----------------------------------------------------------------------------------
def test_one_shot_tape_raises_on_second_use_and_releases_everything():
    x = leaf(1.0, 2.0, 3.0)
    with tg.Tape() as tape:
        y = x.exp()
        z = y.sum()
    out_ref = weakref.ref(y.data)
    assert len(tape) == 2
    g = tape.gradient(z, x)
    torch.testing.assert_close(g.data, torch.exp(x.data))
    assert len(tape) == 0 and list(tape) == [] and tape.records == []
    del y, z
    gc.collect()
    assert out_ref() is None, "the one-shot tape still holds its outputs"
    with pytest.raises(tg.TapeError, match="persistent=True"):
        tape.gradient(x.sum(), x)
    with pytest.raises(tg.TapeError, match="persistent=True"):
        tape.backward(x.sum())
    with pytest.raises(tg.TapeError, match="persistent=True"), tape:
        pass


def test_persistent_tape_replays_many_times():
    x = leaf(1.0, 2.0)
    with tg.Tape(persistent=True) as tape:
        y = x * x
        z = y.sum()
    first = tape.gradient(z, x)
    second = tape.gradient(z, x)
    inner = tape.gradient(y, x, grad_output=tg.tensor([1.0, 0.0], dtype=F64))
    assert torch.equal(first.data, second.data) and torch.equal(first.data, 2 * x.data)
    assert torch.equal(inner.data, torch.tensor([2.0, 0.0], dtype=F64))
    assert len(tape) == 2


def test_gradient_returns_one_tensor_or_a_tuple():
    x, y = leaf(1.0), leaf(2.0)
    with tg.Tape(persistent=True) as tape:
        z = (x * y).sum()
    gx = tape.gradient(z, x)
    both = tape.gradient(z, [x, y])
    assert isinstance(gx, tg.Tensor) and isinstance(both, tuple) and len(both) == 2
    assert both[0].item() == 2.0 and both[1].item() == 1.0


def test_allow_unused():
    x, unused = leaf(1.0), leaf(5.0)
    with tg.Tape(persistent=True) as tape:
        z = (x * 2).sum()
    with pytest.raises(tg.TapeError, match="allow_unused=True"):
        tape.gradient(z, [x, unused])
    gx, gu = tape.gradient(z, [x, unused], allow_unused=True)
    assert gx.item() == 2.0 and gu is None


def test_non_scalar_target_needs_grad_output_of_its_shape():
    x = leaf(1.0, 2.0)
    with tg.Tape(persistent=True) as tape:
        y = x.exp()
    with pytest.raises(tg.TapeError, match="grad_output"):
        tape.gradient(y, x)
    with pytest.raises(ValueError, match="grad_output has shape"):
        tape.gradient(y, x, grad_output=tg.tensor([1.0], dtype=F64))
    v = tg.tensor([3.0, -1.0], dtype=F64)
    torch.testing.assert_close(tape.gradient(y, x, grad_output=v).data, v.data * torch.exp(x.data))


def test_target_is_source():
    x = leaf(1.0, 2.0)
    with tg.Tape() as tape:
        x.exp()
    g = tape.gradient(x, x, grad_output=tg.tensor([2.0, 3.0], dtype=F64))
    assert torch.equal(g.data, torch.tensor([2.0, 3.0], dtype=F64))
    y = leaf(4.0)
    with tg.Tape():
        pass
    assert tg.grad(lambda t: t.sum())(y).item() == 1.0


def test_target_not_recorded_on_the_tape_is_an_error():
    x = leaf(1.0)
    y = x.exp()  # outside the tape
    with tg.Tape() as tape:
        x.sin()
    with pytest.raises(tg.TapeError, match="not recorded"):
        tape.gradient(y, x)


def test_gradients_accumulate_into_grad_with_tape_backward_and_tensor_backward():
    x = leaf(1.0, 2.0)
    w = leaf(3.0)
    c = tg.tensor([1.0, 1.0], dtype=F64)  # no requires_grad: no .grad
    with tg.Tape() as tape:
        loss = ((x * w + c) ** 2).sum()
    tape.backward(loss)
    expected_x = 2 * (x.data * w.data + 1) * w.data
    torch.testing.assert_close(x.grad.data, expected_x)
    assert c.grad is None
    with tg.Tape():
        loss2 = (x * w).sum()
    loss2.backward()
    torch.testing.assert_close(x.grad.data, expected_x + w.data)  # accumulated
    torch.testing.assert_close(w.grad.data, (2 * (x.data * w.data + 1) * x.data).sum(0, keepdim=True) + 3.0)
    with pytest.raises(tg.TapeError):
        tg.tensor(1.0).backward()  # never recorded


def test_backward_with_grad_output_matches_torch():
    x = leaf(0.5, -1.0, 2.0)
    ref = x.data.clone().requires_grad_()
    v = torch.tensor([1.0, 2.0, -3.0], dtype=F64)
    with tg.Tape():
        y = x.tanh() * x
    y.backward(tg.Tensor(v))
    (ref.tanh() * ref).backward(v)
    torch.testing.assert_close(x.grad.data, ref.grad)


def test_a_20000_op_chain_replays_without_recursion():
    x = leaf(0.0)
    n = 20_000
    with tg.Tape() as tape:
        y = x
        for _ in range(n):
            y = y + 1.0
        z = y.sum()
    assert len(tape) == n + 1
    assert z.item() == n
    assert tape.gradient(z, x).item() == 1.0


def test_a_20000_op_chain_of_nontrivial_ops_matches_torch():
    x = leaf(0.3)
    ref = x.data.clone().requires_grad_()
    with tg.Tape() as tape:
        y, r = x, ref
        for i in range(20_000):
            y, r = (y.sin(), r.sin()) if i % 2 else (y * 1.0001, r * 1.0001)
        z = y.sum()
    torch.testing.assert_close(tape.gradient(z, x).data, torch.autograd.grad(r.sum(), ref)[0])


def test_second_order_through_nested_tapes():
    x = leaf(1.5)
    with tg.Tape() as outer:
        with tg.Tape() as inner:
            y = (x**3).sum()
        dy = inner.gradient(y, x)
    d2y = outer.gradient(dy, x)
    assert dy.item() == pytest.approx(3 * 1.5**2)
    assert d2y.item() == pytest.approx(6 * 1.5)


def test_tape_closes_on_exception():
    x = leaf(1.0)
    with pytest.raises(ZeroDivisionError), tg.Tape():
        x.exp()
        raise ZeroDivisionError
    from tapegrad.engine.state import current

    assert current().tapes == []


def test_repr_and_iteration():
    x = leaf(1.0)
    with tg.Tape(persistent=True) as tape:
        x.exp()
    assert "1 records" in repr(tape) and "persistent=True" in repr(tape)
    assert [r.primitive.name for r in iter(tape)] == ["exp"]
    assert "exp" in repr(tape.records[0])
