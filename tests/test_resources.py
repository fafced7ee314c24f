"""Resource safety: deep tapes replay without recursion, one-shot tapes free their records, and a
long training loop does not grow memory."""

from __future__ import annotations

import gc
import resource
import sys
import tracemalloc
import weakref
from contextlib import contextmanager

import torch

import tapegrad as tg

F64 = torch.float64


def leaf(*shape: int) -> tg.Tensor:
    return tg.Tensor(torch.rand(shape, dtype=F64) + 0.5, requires_grad=True)


def _depth() -> int:
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


@contextmanager
def shallow_stack(headroom: int = 60):
    """Allow only ``headroom`` more Python frames: any recursion over the tape would fail."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_depth() + headroom)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def test_a_100000_op_chain_records_and_replays_without_recursion():
    n, rate = 100_000, 1.00001
    x = leaf()
    with shallow_stack():
        with tg.Tape() as tape:
            y = x
            for _ in range(n):
                y = y * rate
        assert len(tape) == n
        g = tape.gradient(y, x)
        del tape, y  # freeing 100,000 records must not recurse either
    assert abs(g.item() - rate**n) < 1e-9 * rate**n


def test_a_deep_chain_through_backward_and_a_second_order_tape():
    x = leaf()
    with shallow_stack():
        with tg.Tape() as outer:
            with tg.Tape() as inner:
                y = x
                for _ in range(2_000):
                    y = (y * 0.5).sin() + y * 0.5
            (dy,) = inner.gradient(y, [x])
        d2 = outer.gradient(dy, x)
        with tg.Tape() as tape:
            z = x
            for _ in range(5_000):
                z = z * 1.00001
        tape.backward(z)
    assert torch.isfinite(d2.data).all() and abs(x.grad.item() - 1.00001**5_000) < 1e-6


def test_a_one_shot_tape_frees_its_records_after_gradient():
    x = leaf(3)
    with tg.Tape() as tape:
        h = x.exp()
        y = (h * 2).tanh().sum()
    intermediates = [weakref.ref(r.output) for r in tape.records[:-1]]
    assert len(intermediates) == 3 and all(ref() is not None for ref in intermediates)
    del h
    tape.gradient(y, x)
    assert len(tape) == 0 and tape.records == []
    assert [ref() for ref in intermediates] == [None] * 3  # freed by reference counting, no gc needed


def test_a_one_shot_tape_frees_its_records_after_backward():
    x = leaf(3)
    with tg.Tape() as tape:
        y = x.sin().exp().sum()
    intermediates = [weakref.ref(r.output) for r in tape.records[:-1]]
    tape.backward(y)
    assert x.grad is not None and [ref() for ref in intermediates] == [None] * 2


def test_a_persistent_tape_keeps_its_records_until_it_is_dropped():
    x = leaf(3)
    with tg.Tape(persistent=True) as tape:
        h = x.exp()
        y = h.sum()
    ref = weakref.ref(h)
    del h
    tape.gradient(y, x)
    assert ref() is not None and len(tape) == 2
    del tape, y
    gc.collect()
    assert ref() is None


def _train(steps: int, w: tg.Tensor, b: tg.Tensor, x: tg.Tensor, t: tg.Tensor) -> float:
    for _ in range(steps):
        with tg.Tape() as tape:
            loss = ((tg.linear(x, w, b) - t) ** 2).mean()
        gw, gb = tape.gradient(loss, [w, b])
        w.data -= 0.05 * gw.data
        b.data -= 0.05 * gb.data
    return loss.item()


def test_10000_training_steps_do_not_grow_memory():
    gen = torch.Generator().manual_seed(0)
    x = tg.Tensor(torch.randn(16, 3, generator=gen))
    t = tg.Tensor(x.data @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3)
    w, b = tg.Tensor(torch.zeros(1, 3), requires_grad=True), tg.Tensor(torch.zeros(1), requires_grad=True)
    first = _train(200, w, b, x, t)  # warm caches (call sites, allocator) before measuring
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak, in KiB on Linux
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        last = _train(10_000, w, b, x, t)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    rss_grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert last < first / 100  # it did train
    # a leak of one record or one tensor wrapper per step would be >= 1 MB here
    assert grown < 256 * 1024, f"Python memory grew by {grown} bytes over 10,000 steps"
    assert rss_grown_mib < 64, f"peak RSS grew by {rss_grown_mib:.1f} MiB"
