"""Every built-in primitive's VJP, first and second order, against finite differences and torch.autograd.

One parametrized hypothesis test runs over the registry, so a new primitive without an input spec in
``op_specs.SPECS`` fails the suite. The broadcasting front ends (``tg.add`` ... ``tg.where``) are
checked against torch.autograd on broadcastable shapes and Python numbers.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_specs import REFERENCES, SPECS, Case
from op_specs_multi import flat_out
from strategies import F64, away_from, broadcast_pair, examples, floats, seeds, signed, upstream

import nn  # noqa: F401  (registers nn's own primitives)
import tapegrad as tg

PRIMITIVES = tg.registered_primitives()
# the library's primitives; users' (and other tests') custom ones are registered from other modules
BUILTIN = sorted(n for n, p in PRIMITIVES.items() if p.origin.startswith(("tapegrad.", "nn.")))
EXAMPLES_PER_OP = examples(100)
SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
SETTINGS = settings(max_examples=EXAMPLES_PER_OP, deadline=None, suppress_health_check=SLOW_OK)


def test_every_builtin_primitive_has_an_input_spec():
    assert len(BUILTIN) >= 35
    missing = sorted(set(BUILTIN) - SPECS.keys())
    assert not missing, f"add an input spec to tests/op_specs.py for: {missing}"
    assert not sorted(SPECS.keys() - set(BUILTIN)), "a spec names a primitive that is not registered"


def tensors_in(value) -> list[torch.Tensor]:
    """The torch tensors inside an argument or a param (indices may be tuples holding tensors)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_in(v)]
    return []


def snapshot(case: Case) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(t, t.clone()) for t in tensors_in(list(case.args) + list(case.params.values()))]


def assert_unchanged(saved: list[tuple[torch.Tensor, torch.Tensor]], what: str) -> None:
    for t, copy in saved:
        assert torch.equal(t, copy), f"{what} mutated one of its inputs"


def caller(prim: tg.Primitive, case: Case):
    """f(*xs): the primitive with ``xs`` in the positions of the differentiable inputs (a multi-output one's
    outputs joined by `flat_out`)."""
    positions = case.differentiable()

    def f(*xs):
        args = list(case.args)
        for i, x in zip(positions, xs):
            args[i] = x
        return flat_out(prim(*args, **case.params))

    return f


def torch_caller(prim: tg.Primitive, case: Case):
    """The same call on raw torch tensors: the forward is plain torch, so torch.autograd differentiates it."""
    positions = case.differentiable()
    forward = REFERENCES.get(prim.name, prim.forward)

    def f(*xs):
        args = list(case.args)
        for i, x in zip(positions, xs):
            args[i] = x
        return flat_out(forward(*args, **case.params))

    return f


def assert_close(ours, ref, like: torch.Tensor, what: str, rtol: float = 1e-7, atol: float = 1e-9) -> None:
    """Our gradient (tg.Tensor or None) equals torch's (None means zero), with the input's shape and dtype."""
    ours = torch.zeros_like(like) if ours is None else ours.data
    ref = torch.zeros_like(like) if ref is None else ref.detach()
    assert ours.shape == like.shape, f"{what}: gradient shape {tuple(ours.shape)} for input {tuple(like.shape)}"
    assert ours.dtype == like.dtype and ours.device == like.device, f"{what}: gradient {ours.dtype} {ours.device}"
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def second_order_target(f, weights: list[torch.Tensor]):
    """h(*xs, g) = sum_i <VJP_i(g), w_i>: differentiating h differentiates the VJP rules themselves."""

    def h(*xs_and_g):
        *xs, g = xs_and_g
        with tg.Tape() as inner:
            inner.watch(*xs)
            out = f(*xs)
        grads = inner.gradient(out, xs, grad_output=g, allow_unused=True)
        terms = [(gi * tg.Tensor(w)).sum() for gi, w in zip(grads, weights) if gi is not None]
        total = terms[0] if terms else (g * 0).sum()  # a tensor even where no VJP depends on anything
        for term in terms[1:]:
            total = total + term
        return total

    return h


@pytest.mark.parametrize("name", BUILTIN)
@SETTINGS
@given(data=st.data())
def test_primitive_vjp(name, data):
    prim = PRIMITIVES[name]
    case = data.draw(SPECS[name], label="case")
    seed = data.draw(seeds, label="seed")
    saved = snapshot(case)
    raw = [case.args[i] for i in case.differentiable()]
    f, ref_f = caller(prim, case), torch_caller(prim, case)
    tol = {"rtol": 1e-5, "atol": 1e-6} if case.params.get("dtype") == torch.float32 else {}

    # first order, every output element: central differences of the forward
    assert tg.gradcheck(f, raw, **case.gradcheck)

    # first order, a random upstream gradient: the tape against torch.autograd
    xs = [tg.Tensor(a, requires_grad=True) for a in raw]  # the very tensors of the case: mutation shows
    with tg.Tape() as tape:
        out = f(*xs)
    assert len(tape) == (1 if not prim.multi else 2 + len(tape.records[0].outputs))  # (flat_out's reshapes, cat)
    assert tape.records[0].primitive is prim
    g = upstream(out.shape, seed).to(out.dtype)
    g_saved = g.clone()
    grads = tape.gradient(out, xs, grad_output=tg.Tensor(g), allow_unused=True)
    assert torch.equal(g, g_saved), f"the VJP of {name} mutated the upstream gradient"
    ref_xs = [a.detach().clone().requires_grad_() for a in raw]
    ref_out = ref_f(*ref_xs)
    torch.testing.assert_close(out.data, ref_out.detach())
    ref = torch.autograd.grad(ref_out, ref_xs, g, allow_unused=True)
    for i, (ours, theirs, x) in enumerate(zip(grads, ref, raw)):
        assert_close(ours, theirs, x, f"{name}: d/d input {i}", **tol)
    assert_unchanged(saved, f"{name} or its VJP")

    # second order: the VJP of the VJP, against central differences and against torch.autograd
    weights = [upstream(x.shape, seed + 1 + i) for i, x in enumerate(raw)]
    h = second_order_target(f, weights)
    assert tg.gradcheck(h, [*raw, g], **case.gradcheck)
    leaves = [tg.Tensor(a.clone(), requires_grad=True) for a in [*raw, g]]
    with tg.Tape() as outer:
        total = h(*leaves)
    ours2 = outer.gradient(total, leaves, allow_unused=True)
    ref_leaves = [a.detach().clone().requires_grad_() for a in [*raw, g]]
    first = torch.autograd.grad(ref_f(*ref_leaves[:-1]), ref_leaves[:-1], ref_leaves[-1], create_graph=True)
    ref_total = sum((fi * w.to(fi.dtype)).sum() for fi, w in zip(first, weights))
    # a piecewise-constant op's torch gradient is a constant zero: nothing to differentiate again
    ref2 = torch.autograd.grad(ref_total, ref_leaves, allow_unused=True) if ref_total.requires_grad else [None] * 9
    for i, (ours, theirs, x) in enumerate(zip(ours2, ref2, [*raw, g])):
        assert_close(ours, theirs, x, f"{name}: second order, d/d input {i}", **tol)
    assert_unchanged(saved, f"{name}'s second-order replay")


# --- the broadcasting front ends ------------------------------------------------------------------
FRONT_ENDS = {
    "add": (tg.add, torch.add, lambda a, b: a + b),
    "sub": (tg.sub, torch.sub, lambda a, b: a - b),
    "mul": (tg.mul, torch.mul, lambda a, b: a * b),
    "div": (tg.div, torch.div, lambda a, b: a / b),
    "pow": (tg.pow, torch.pow, lambda a, b: a**b),
}


@st.composite
def front_end_operands(draw, name: str):
    """Two operands of broadcastable shapes, either one possibly a Python number."""
    big, small = draw(broadcast_pair())
    shapes = [big, small] if draw(st.booleans()) else [small, big]
    left = floats(shapes[0], 0.3, 2.0) if name == "pow" else floats(shapes[0])
    right = {"div": signed(shapes[1], 0.3, 2.0), "pow": away_from(shapes[1], [0.0])}.get(name, floats(shapes[1]))
    x, y = draw(left), draw(right)
    mode = draw(st.sampled_from(["tensors", "tensors", "left number", "right number"]))
    if mode == "left number":
        x = draw(st.sampled_from([0.5, 2, 1.5]))
    if mode == "right number":
        y = draw(st.sampled_from([0.5, 2, -1.5, 3]))
    return x, y


def check_against_torch(ours_fn, torch_fn, operands: list, seed: int) -> None:
    """First and second order gradients of ours_fn(*operands) equal torch's, for the tensor operands."""
    positions = [i for i, a in enumerate(operands) if isinstance(a, torch.Tensor) and a.is_floating_point()]

    def with_leaves(args, leaves):
        args = list(args)
        for i, leaf in zip(positions, leaves):
            args[i] = leaf
        return args

    xs = [tg.Tensor(operands[i].clone(), requires_grad=True) for i in positions]
    ref_xs = [operands[i].clone().requires_grad_() for i in positions]
    with tg.Tape() as outer:
        with tg.Tape() as inner:
            out = ours_fn(*with_leaves(operands, xs))
        ref_out = torch_fn(*with_leaves(operands, ref_xs))
        torch.testing.assert_close(out.data, ref_out.detach())
        g = upstream(out.shape, seed)
        grads = inner.gradient(out, xs, grad_output=tg.Tensor(g))
        weights = [upstream(x.shape, seed + 1 + i) for i, x in enumerate(xs)]
        total = sum((gi * tg.Tensor(w)).sum() for gi, w in zip(grads, weights))
    first_ref = torch.autograd.grad(ref_out, ref_xs, g, create_graph=True)
    total_ref = sum((gi * w).sum() for gi, w in zip(first_ref, weights))
    if total_ref.requires_grad:
        second = outer.gradient(total, xs, allow_unused=True)
        second_ref = torch.autograd.grad(total_ref, ref_xs, allow_unused=True)
    else:  # the first derivative is constant (add, sub): nothing of it was recorded
        assert not any(r.output is total for r in outer)
        second = second_ref = [None] * len(xs)
    for i, x in enumerate(xs):
        assert_close(grads[i], first_ref[i], x.data, f"input {i}")
        assert_close(second[i], second_ref[i], x.data, f"second order, input {i}")


@pytest.mark.parametrize("name", sorted(FRONT_ENDS))
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_broadcasting_front_end_matches_torch(name, data):
    ours, theirs, operator = FRONT_ENDS[name]
    x, y = data.draw(front_end_operands(name), label="operands")
    seed = data.draw(seeds, label="seed")
    check_against_torch(ours, theirs, [x, y], seed)
    check_against_torch(operator, operator, [x, y], seed)  # the operators and reflected operators


@settings(max_examples=examples(40), deadline=None)
@given(shapes=broadcast_pair(), data=st.data())
def test_where_broadcasts_like_torch(shapes, data):
    big, small = shapes
    picks = [data.draw(st.sampled_from([big, small])) for _ in range(3)]
    n = torch.Size(picks[0]).numel()
    flags = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    cond = torch.tensor(flags, dtype=torch.bool).reshape(picks[0])
    x = data.draw(st.one_of(floats(picks[1]), st.just(0.5)))
    y = data.draw(floats(picks[2]) if not isinstance(x, torch.Tensor) else st.one_of(floats(picks[2]), st.just(-1.5)))
    check_against_torch(lambda c, a, b: tg.where(c, a, b), torch.where, [cond, x, y], data.draw(seeds))


def test_front_ends_record_broadcast_to_and_their_vjp_sums_back():
    x = tg.Tensor(torch.ones(3, 1, dtype=F64), requires_grad=True)
    y = tg.Tensor(torch.ones(4, dtype=F64), requires_grad=True)
    with tg.Tape() as tape:
        out = x * y
    assert [r.primitive.name for r in tape] == ["broadcast_to", "broadcast_to", "mul"]
    gx, gy = tape.gradient(out, [x, y], grad_output=tg.Tensor(torch.ones(3, 4, dtype=F64)))
    assert gx.shape == (3, 1) and gy.shape == (4,)
    assert torch.equal(gx.data, torch.full((3, 1), 4.0, dtype=F64))
    assert torch.equal(gy.data, torch.full((4,), 3.0, dtype=F64))
