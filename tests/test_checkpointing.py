"""tg.checkpoint: the same first and second order gradients as without it, with only one record kept."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import F64, examples, floats, seeds, upstream

import nn
import tapegrad as tg

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func


def make_blocks(n: int, width: int, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    blocks = [nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(n)]
    model = nn.Sequential(*blocks)
    for p in model.parameters():
        p.data = p.data.double()
    return model


def run(model: nn.Sequential, x: tg.Tensor, every: int | None, weights: list[torch.Tensor]):
    """First order gradients of a loss w.r.t. x and the parameters, and second order ones of
    sum <grad_i, w_i> (checkpointing every ``every`` blocks, or never)."""
    blocks = list(model)
    sources = [x, *model.parameters()]
    with tg.Tape() as outer:
        with tg.Tape() as tape:
            h = x
            if every is None:
                h = model(x)
            else:
                for i in range(0, len(blocks), every):
                    h = tg.checkpoint(nn.Sequential(*blocks[i : i + every]), h)
            loss = (h.sin() * h).sum()
        n_records = len(tape)
        grads = tape.gradient(loss, sources)
        total = (grads[0] * tg.Tensor(weights[0])).sum()
        for g, w in zip(grads[1:], weights[1:]):
            total = total + (g * tg.Tensor(w)).sum()
    second = outer.gradient(total, sources)
    return grads, second, n_records


@settings(max_examples=examples(10), deadline=None)
@given(x=floats((3, 4)), seed=seeds, every=st.sampled_from([1, 2, 3]))
def test_first_and_second_order_gradients_equal_the_uncheckpointed_ones(x, seed, every):
    model = make_blocks(6, 4, seed % 100)
    xs = tg.Tensor(x, requires_grad=True)
    weights = [upstream(p.shape, seed + i) for i, p in enumerate([x, *(p.data for p in model.parameters())])]
    plain, plain2, n_plain = run(model, xs, None, weights)
    ckpt, ckpt2, n_ckpt = run(model, xs, every, weights)
    assert n_ckpt == -(-6 // every) + 3 < n_plain  # one record per block, then sin, mul, sum
    for i, (a, b) in enumerate(zip(plain, ckpt)):
        torch.testing.assert_close(b.data, a.data, rtol=1e-12, atol=1e-12, msg=lambda m, i=i: f"first order {i}: {m}")
    for i, (a, b) in enumerate(zip(plain2, ckpt2)):
        torch.testing.assert_close(b.data, a.data, rtol=1e-10, atol=1e-10, msg=lambda m, i=i: f"second order {i}: {m}")


def test_checkpoint_matches_torch_autograd_and_finite_differences():
    w = torch.tensor([[0.5, -1.0], [1.5, 0.3]], dtype=F64)

    def block(a, b):
        return (a @ tg.Tensor(w)).tanh() * b + a.exp()

    a = torch.tensor([[0.2, -0.4], [1.0, 0.1]], dtype=F64)
    b = torch.tensor([[1.0, 2.0], [-0.5, 0.7]], dtype=F64)
    assert tg.gradcheck(lambda p, q: tg.checkpoint(block, p, q), [a, b])
    ta, tb = a.clone().requires_grad_(), b.clone().requires_grad_()
    ref = torch.autograd.grad(((ta @ w).tanh() * tb + ta.exp()).sum(), [ta, tb])
    xa, xb = tg.Tensor(a, requires_grad=True), tg.Tensor(b, requires_grad=True)
    with tg.Tape() as tape:
        out = tg.checkpoint(block, xa, xb).sum()
    for ours, theirs in zip(tape.gradient(out, [xa, xb]), ref):
        torch.testing.assert_close(ours.data, theirs)


def test_the_tape_keeps_only_the_inputs_and_output():
    model = make_blocks(3, 4)
    x = tg.Tensor(torch.randn(2, 4, dtype=F64), requires_grad=True)
    inside = []

    def block(h):
        a = model(h)
        inside.append(weakref.ref(a))
        return a * 2

    gc.disable()  # freed by reference counting, as soon as the block returns, not by the cycle collector
    try:
        with tg.Tape() as tape:
            y = tg.checkpoint(block, x)
            assert inside[0]() is None
    finally:
        gc.enable()
    with tape:
        loss = y.sum()
    (record,) = tape.records[:1]
    assert record.primitive.name == "checkpoint"
    assert record.inputs[0] is x and record.output is y
    assert len(record.inputs) == 1 + len(list(model.parameters()))  # x and the captured parameters
    grads = tape.gradient(loss, [x, *model.parameters()])
    assert all(g is not None for g in grads)


def test_random_ops_inside_see_the_same_random_state_when_recomputed():
    x = torch.randn(5, 6, dtype=F64)

    def dropout(h):
        keep = tg.Tensor((torch.rand(h.shape) > 0.5).to(F64))
        return (h * keep).tanh() * 2

    def grads(checkpointed: bool):
        torch.manual_seed(3)
        xs = tg.Tensor(x, requires_grad=True)
        with tg.Tape() as tape:
            y = tg.checkpoint(dropout, xs) if checkpointed else dropout(xs)
            loss = (y * y).sum()
        after = torch.rand(1)  # the caller's random stream is not disturbed by the recomputation
        return tape.gradient(loss, xs), after

    (plain, r1), (ckpt, r2) = grads(False), grads(True)
    assert torch.equal(plain.data, ckpt.data) and torch.equal(r1, r2)
    assert (plain.data == 0).any()  # the mask dropped something


def test_nested_checkpoints_numbers_and_an_argument_passed_twice():
    def inner(a, scale):
        return (a * scale).sin()

    def outer_block(a, b):
        return tg.checkpoint(inner, a, 3.0) * b

    x = torch.tensor([0.3, -0.8, 1.1], dtype=F64)
    xs = tg.Tensor(x, requires_grad=True)
    with tg.Tape() as tape:
        y = tg.checkpoint(outer_block, xs, xs).sum()
    ours = tape.gradient(y, xs)
    tx = x.clone().requires_grad_()
    (ref,) = torch.autograd.grad(((tx * 3.0).sin() * tx).sum(), tx)
    torch.testing.assert_close(ours.data, ref)


def test_without_a_tape_it_just_calls_fn():
    x = tg.tensor([1.0, 2.0])
    assert torch.equal(tg.checkpoint(lambda a: a * 2, x).data, torch.tensor([2.0, 4.0]))
    with tg.no_grad():
        y = tg.checkpoint(lambda a: a * 2, tg.tensor([1.0], requires_grad=True))
    assert not y.requires_grad


def test_forward_mode_through_a_checkpoint():
    x = torch.tensor([0.3, -0.8, 1.1], dtype=F64)
    t = torch.tensor([1.0, 2.0, -1.0], dtype=F64)
    _, ours = tg.jvp(lambda a: tg.checkpoint(lambda b: b.sin() * b, a), (tg.Tensor(x),), (tg.Tensor(t),))
    _, ref = torch.func.jvp(lambda a: a.sin() * a, (x,), (t,))
    torch.testing.assert_close(ours.data, ref)


def test_traced_step_with_checkpoints_matches_eager():
    model = make_blocks(4, 3)
    x = tg.Tensor(torch.randn(2, 3, dtype=F64))
    blocks = list(model)

    def step(a):
        h = tg.checkpoint(nn.Sequential(*blocks[:2]), a)
        h = tg.checkpoint(nn.Sequential(*blocks[2:]), h)
        return (h * h).sum()

    with tg.Tape() as tape:
        loss = step(x)
    params = list(model.parameters())
    ref = tape.gradient(loss, params)
    traced = tg.trace(step)
    for _ in range(2):
        model.zero_grad()
        traced(x)
        for p, r in zip(params, ref):
            torch.testing.assert_close(p.grad.data, r.data)


def test_a_function_returning_a_non_tensor_is_a_clear_error():
    def two_outputs(a):
        return a * 2, a * 3

    x = tg.Tensor(torch.zeros(2, 3), requires_grad=True)
    expected = r"checkpoint\(two_outputs\): fn returned tuple for arguments of shapes \(\(2, 3\)\)"
    with tg.Tape(), pytest.raises(TypeError, match=expected):
        tg.checkpoint(two_outputs, x)
    with pytest.raises(TypeError, match=r"checkpoint\(two_outputs\): fn returned tuple"):
        tg.checkpoint(two_outputs, x)


def test_post_accumulate_grad_hooks_fire_for_parameters_inside_a_checkpoint():
    model = make_blocks(2, 3)
    seen = []
    weight = model[0][0].weight
    weight.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.data.clone()))
    x = tg.Tensor(torch.randn(4, 3, dtype=F64))
    with tg.Tape() as tape:
        loss = tg.checkpoint(model, x).sum()
    tape.backward(loss)
    assert len(seen) == 1 and torch.equal(seen[0], weight.grad.data)


def test_checkpoints_and_forward_mode_in_threads_each_with_its_own_tape():
    from concurrent.futures import ThreadPoolExecutor

    model = make_blocks(4, 3)
    params = list(model.parameters())
    xs = [torch.randn(5, 3, generator=torch.Generator().manual_seed(i), dtype=F64) for i in range(4)]

    def grads(x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for _ in range(10):
            with tg.Tape() as tape:
                h = tg.checkpoint(nn.Sequential(*list(model)[:2]), tg.Tensor(x))
                loss = (tg.checkpoint(nn.Sequential(*list(model)[2:]), h) ** 2).sum()
            out = [g.data for g in tape.gradient(loss, params)]
            _, tangent = tg.jvp(lambda a: (model(a) ** 2).sum(), (tg.Tensor(x),), (tg.Tensor(x),))
            out.append(tangent.data)
        return out

    expected = [grads(x) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(grads, xs))
    for ours, ref in zip(results, expected):
        for a, b in zip(ours, ref):
            assert torch.equal(a, b)
