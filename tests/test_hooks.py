"""`Tensor.register_post_accumulate_grad_hook`: fired by the reverse walk when a leaf's gradient is final."""

from __future__ import annotations

import pytest
import torch

import tapegrad as tg


def leaves():
    gen = torch.Generator().manual_seed(0)
    early = tg.Tensor(torch.randn(3, 4, generator=gen, dtype=torch.float64), requires_grad=True)
    late = tg.Tensor(torch.randn(4, dtype=torch.float64), requires_grad=True)
    x = tg.Tensor(torch.randn(5, 3, generator=gen, dtype=torch.float64))
    return early, late, x


def loss_of(early, late, x):
    h = (x @ early).tanh()  # `early` is read only by the first op of the forward pass
    return ((h * late).sum(dim=1) ** 2).mean() + (late * late).sum()


def expected_grads(early, late, x):
    e = early.data.clone().requires_grad_(True)
    lt = late.data.clone().requires_grad_(True)
    h = torch.tanh(x.data @ e)
    (((h * lt).sum(dim=1) ** 2).mean() + (lt * lt).sum()).backward()
    return e.grad, lt.grad


def hooked(early, late, x) -> list:
    """Hooks on both leaves that log (name, whether .grad equals torch's gradient) when they run."""
    ge, gl = expected_grads(early, late, x)
    expected = {"early": ge, "late": gl}
    events = []

    def hook(t):
        name = "early" if t.shape == (3, 4) else "late"
        events.append((name, torch.allclose(t.grad.data, expected[name])))

    early.register_post_accumulate_grad_hook(hook)
    late.register_post_accumulate_grad_hook(hook)
    return events


def test_hooks_fire_as_gradients_become_final_with_grad_complete():
    early, late, x = leaves()
    events = hooked(early, late, x)
    with tg.Tape() as tape:
        loss = loss_of(early, late, x)
    tape.backward(loss)
    # `late` is last read near the start of the backward pass; `early`, used only first, fires last
    assert events == [("late", True), ("early", True)]


def test_hooks_fire_before_the_walk_ends():
    early, late, x = leaves()
    seen = []
    with tg.Tape() as tape:
        loss = loss_of(early, late, x)
    n = len(tape)
    late.register_post_accumulate_grad_hook(lambda t: seen.append(len(tape._records)))
    tape.backward(loss)  # a one-shot tape pops its records as it replays them
    assert seen and 0 < seen[0] < n


def test_a_traced_step_fires_the_hooks_in_the_same_order():
    early, late, x = leaves()
    events = hooked(early, late, x)
    step = tg.trace(lambda x: loss_of(early, late, x))
    for _ in range(3):  # trace, verify, replay
        early.grad = late.grad = None
        step(x)
    assert events == [("late", True), ("early", True)] * 3


def test_removed_hooks_stop_and_hooks_accumulate_across_backwards():
    early, late, x = leaves()
    calls = []
    handle = early.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.data.clone()))
    for _ in range(2):
        with tg.Tape():
            loss = loss_of(early, late, x)
        loss.backward()
    assert len(calls) == 2 and torch.allclose(calls[1], 2 * calls[0])
    handle.remove()
    handle.remove()
    with tg.Tape():
        loss = loss_of(early, late, x)
    loss.backward()
    assert len(calls) == 2


def test_a_hook_on_a_non_leaf_is_an_error():
    early, late, x = leaves()
    with tg.Tape():
        h = x @ early
    with pytest.raises(tg.TapeError, match="non-leaf"):
        h.register_post_accumulate_grad_hook(lambda t: None)
