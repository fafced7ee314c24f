"""``x[idx] = value``: torch's in-place write off the tape; on a recorded tensor an index-put whose
gradient reaches ``value`` and the untouched part of ``x`` (first and second order, against torch in
float64 and finite differences), with stale saved tensors still caught."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from strategies import F64

import tapegrad as tg

TOL = dict(rtol=1e-10, atol=1e-10)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _mask_put(a: Any, y: Any) -> Any:
    x = a * 1.5
    x[x > 0.3] = y.sum() * 0.5  # a 0-d tensor value broadcast over the picked positions
    return (x * x).sum()


def _column(a: Any, y: Any) -> Any:
    x = a.sin() * 2.0
    x[:, 0] = y[:3] * y[:3]
    return (x.exp() * a).sum()


def _rows_twice(a: Any, y: Any) -> Any:
    x = a * a
    x[[0, 2]] = y[:4]  # one row value broadcast to both rows
    x[1, 1:3] = y[2:4] * 3.0
    return (x.sin() * x).sum()


def _number_then_tensor(a: Any, y: Any) -> Any:
    x = a + 0.0
    x[0] = 2.0
    x[..., -1] = y[1]
    return (x * a).sum()


def _into_a_constant(a: Any, y: Any) -> Any:
    x = torch.zeros(3, 4, dtype=F64) if isinstance(a, torch.Tensor) else tg.Tensor(torch.zeros(3, 4, dtype=F64))
    x[1] = y[:4]
    return (x * a).sum() + (x * x).sum()


FUNCTIONS: dict[str, Callable[[Any, Any], Any]] = {
    "mask": _mask_put,
    "column": _column,
    "rows_twice": _rows_twice,
    "number_then_tensor": _number_then_tensor,
    "into_a_constant": _into_a_constant,
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_recorded_assignment_matches_torch_first_and_second_order(name: str) -> None:
    f = FUNCTIONS[name]
    a0, y0 = rand(3, 4), rand(5, seed=1)
    ra, ry = a0.clone().requires_grad_(), y0.clone().requires_grad_()
    ref = f(ra, ry)
    ref_grads = torch.autograd.grad(ref, [ra, ry], create_graph=True)
    a, y = tg.Tensor(a0.clone(), requires_grad=True), tg.Tensor(y0.clone(), requires_grad=True)
    with tg.Tape() as outer:
        with tg.Tape() as tape:
            out = f(a, y)
        torch.testing.assert_close(out.data, ref.detach(), **TOL)
        grads = tape.gradient(out, [a, y])
        for ours, theirs in zip(grads, ref_grads):
            torch.testing.assert_close(ours.data, theirs.detach(), **TOL)
        v = [rand(3, 4, seed=2), rand(5, seed=3)]
        total = (grads[0] * tg.Tensor(v[0])).sum() + (grads[1] * tg.Tensor(v[1])).sum()
    second = outer.gradient(total, [a, y], allow_unused=True)
    ref_total = (ref_grads[0] * v[0]).sum() + (ref_grads[1] * v[1]).sum()
    for ours2, theirs2 in zip(second, torch.autograd.grad(ref_total, [ra, ry], allow_unused=True)):
        expected = torch.zeros(0) if theirs2 is None else theirs2
        got = torch.zeros(0) if ours2 is None else ours2.data
        torch.testing.assert_close(got, expected, **TOL)
    assert tg.gradcheck(f, [tg.Tensor(a0), tg.Tensor(y0)])


def test_off_the_tape_it_is_torchs_in_place_write() -> None:
    data = rand(3, 4)
    x, ref = tg.Tensor(data.clone()), data.clone()
    view = x.data[0]
    for target in (x, ref):
        target[target > 0.5] = -1.0
        target[:, 0] = torch.arange(3, dtype=F64)
        target[[2, 0]] = tg.Tensor(torch.ones(4, dtype=F64)) if target is x else torch.ones(4, dtype=F64)
        target[1, 1:] = 7
    assert torch.equal(x.data, ref) and torch.equal(view, ref[0])  # in place: views see it
    assert x.data._version > 0


def test_a_saved_tensor_changed_by_assignment_is_still_caught() -> None:
    a = tg.Tensor(rand(3, 4), requires_grad=True)
    with tg.Tape() as tape:
        x = a * 2.0
        h = x * x  # mul saves x
        x[0] = 1.0
        loss = h.sum() + x.sum()
    with pytest.raises(tg.InPlaceError, match=r"^mul .*modified in place"):
        tape.gradient(loss, a)
    ra = rand(3, 4).requires_grad_()  # torch refuses the same program
    rx = ra * 2.0
    rh = rx * rx
    rx[0] = 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (rh.sum() + rx.sum()).backward()


def test_a_leaf_that_requires_grad_is_refused_while_a_tape_records() -> None:
    w = tg.Tensor(rand(3), requires_grad=True)
    with tg.Tape() as tape:
        with pytest.raises(tg.TapeError, match=r"leaf that requires grad.*test_setitem\.py:\d+"):
            w[0] = 1.0
        with tg.no_grad():
            w[0] = 1.0
    w[1] = 2.0  # no tape open: nothing could see the change
    assert w.data[0] == 1.0 and w.data[1] == 2.0 and w.is_leaf and len(tape) == 0


def test_the_constant_written_into_gets_no_gradient_and_the_value_does() -> None:
    x = tg.Tensor(torch.zeros(2, 3, dtype=F64))
    y = tg.Tensor(rand(3), requires_grad=True)
    with tg.Tape() as tape:
        x[1] = y * 2.0
        loss = (x * x).sum()
    tape.backward(loss)
    assert x.grad is None and not x.is_leaf and x.requires_grad
    torch.testing.assert_close(y.grad.data, 8.0 * y.data, **TOL)


def test_sampling_style_mask_assignment_under_no_grad() -> None:
    logits = tg.Tensor(rand(2, 6))
    with tg.no_grad():
        v, _ = torch.topk(logits.data, 3)
        logits[logits < tg.Tensor(v)[:, [-1]]] = -float("inf")
    ref = rand(2, 6)
    rv, _ = torch.topk(ref, 3)
    ref[ref < rv[:, [-1]]] = -float("inf")
    assert torch.equal(logits.data, ref)


def test_a_write_that_does_not_fit_names_both_shapes() -> None:
    x = tg.Tensor(rand(3, 4))
    with pytest.raises(IndexError, match=r"x\[...\] = value: cannot write \(5,\) float64 cpu into \(3, 4\) float64"):
        x[0] = torch.ones(5, dtype=F64)


def test_traced_and_forward_mode_steps_see_the_assignment() -> None:
    def f(a: Any, y: Any) -> Any:
        x = a * 2.0
        x[:, 0] = y
        return (x * x).sum()

    a0, y0 = rand(3, 4), rand(3, seed=1)
    ra, ry = a0.clone().requires_grad_(), y0.clone().requires_grad_()
    f(ra, ry).backward()
    a, y = tg.Tensor(a0.clone(), requires_grad=True), tg.Tensor(y0.clone(), requires_grad=True)
    step = tg.trace(f)
    for _ in range(3):  # the trace, its checked first replay, then the generated code alone
        a.grad = y.grad = None
        step(a, y)
        torch.testing.assert_close(a.grad.data, ra.grad, **TOL)
        torch.testing.assert_close(y.grad.data, ry.grad, **TOL)
    tangent = rand(3, 4, seed=2)
    _, derivative = tg.jvp(lambda t: f(t, y), (a,), (tg.Tensor(tangent),))
    torch.testing.assert_close(derivative.data, (ra.grad * tangent).sum(), **TOL)
