"""Recording state is per thread; mode nesting, one-shot retries and abandoned tapes behave like torch."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest
import torch

import tapegrad as tg
from tapegrad.engine import state


def run_threads(targets: list) -> list:
    """Run each callable in its own thread, started together; returns results, re-raising errors."""
    results: list = [None] * len(targets)
    errors: list = []
    barrier = threading.Barrier(len(targets))

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = targets[i]()
        except BaseException as err:  # noqa: BLE001  (reported in the main thread)
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def train(seed: int, steps: int = 400) -> torch.Tensor:
    """A small regression trained with its own tape per step; returns the final weights."""
    gen = torch.Generator().manual_seed(seed)
    x = tg.Tensor(torch.randn(16, 3, generator=gen, dtype=torch.float64))
    y = tg.Tensor(torch.randn(16, 1, generator=gen, dtype=torch.float64))
    w = tg.Tensor(torch.randn(3, 1, generator=gen, dtype=torch.float64), requires_grad=True)
    b = tg.Tensor(torch.zeros(1, dtype=torch.float64), requires_grad=True)
    for _ in range(steps):
        with tg.Tape() as tape:
            loss = (((x @ w + b).tanh() - y) ** 2).mean()
        tape.backward(loss)
        with tg.no_grad():
            w.data -= 0.1 * w.grad.data
            b.data -= 0.1 * b.grad.data
        w.grad = b.grad = None
    return torch.cat([w.data.reshape(-1), b.data])


def test_four_threads_with_their_own_tapes_train_as_one_thread_does():
    alone = [train(seed) for seed in range(4)]
    together = run_threads([lambda s=seed: train(s) for seed in range(4)])
    for a, t in zip(alone, together):
        assert torch.equal(a, t)


def test_no_grad_in_one_thread_leaves_another_recording():
    inside = threading.Event()
    done = threading.Event()

    def idle_in_no_grad() -> bool:
        with tg.no_grad():
            inside.set()
            done.wait(10)
            return state.current().grad_enabled

    def record() -> tuple:
        inside.wait(10)
        x = tg.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        with tg.Tape() as tape:
            y = (x * 3).sum()
        done.set()
        return [r.primitive.name for r in tape.records], tape.gradient(y, x).data.tolist()

    grad_enabled_there, (names, grad) = run_threads([idle_in_no_grad, record])
    assert grad_enabled_there is False
    assert names == ["mul", "sum"] and grad == [3.0, 3.0]
    assert state.current().grad_enabled is True


def test_a_tape_open_in_one_thread_records_nothing_of_another():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.Tape() as tape:
        (other,) = run_threads([lambda: x.exp()])
        mine = x.sin()
    assert [r.primitive.name for r in tape.records] == ["sin"]
    assert other.is_leaf and not mine.is_leaf


def test_using_a_tape_open_in_another_thread_is_a_clear_error():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.Tape() as tape:
        y = x.exp().sum()
        for use in (lambda: tape.gradient(y, x), lambda: tape.__enter__(), lambda: tape.watch(x)):
            with pytest.raises(tg.TapeError, match="open in another thread"):
                run_threads([use])
    assert tape.gradient(y, x) is not None  # closed: any thread may replay it


def test_enable_grad_inside_no_grad_records_on_the_open_tape():
    x = tg.tensor([0.5, 1.5], dtype=torch.float64, requires_grad=True)
    with tg.Tape() as tape, tg.no_grad():
        hidden = x.exp()
        with tg.enable_grad():
            y = (x * x).sum()
    assert not hidden.requires_grad and y.requires_grad
    assert tape.gradient(y, x).data.tolist() == [1.0, 3.0]


def test_a_one_shot_tape_survives_a_gradient_that_raised_for_an_unused_source():
    a = tg.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = tg.tensor([3.0], dtype=torch.float64, requires_grad=True)
    with tg.Tape() as tape:
        y = (a * a).sum()
    with pytest.raises(tg.TapeError, match="source 1 .* was not used"):
        tape.gradient(y, [a, b])
    ga, gb = tape.gradient(y, [a, b], allow_unused=True)
    assert ga.data.tolist() == [2.0, 4.0] and gb is None
    with pytest.raises(tg.TapeError, match="released its records"):  # now it has succeeded once
        tape.gradient(y, a)


def abandon(persistent: bool) -> weakref.ref:
    """Record a step on a tape and drop the tape and everything it recorded, unreplayed."""
    x = tg.Tensor(torch.randn(64, 64), requires_grad=True)
    tape = tg.Tape(persistent=persistent)
    with tape:
        (x.tanh() @ x).exp().sum()
    return weakref.ref(tape)


@pytest.mark.parametrize("persistent", [True, False])
def test_abandoned_tapes_are_freed_by_reference_counting(persistent):
    gc.collect()
    gc.disable()
    try:
        refs = [abandon(persistent) for _ in range(60)]
        # the one-shot tape closed last stays for `loss.backward()` until another tape closes
        alive = [i for i, ref in enumerate(refs) if ref() is not None]
        assert alive == ([] if persistent else [59])
        with tg.Tape():
            pass
        assert refs[-1]() is None
    finally:
        gc.enable()


def test_loss_backward_after_an_unnamed_tape():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.Tape():
        loss = (x * x).sum()
    loss.backward()
    assert x.grad.data.tolist() == [2.0, 4.0]
