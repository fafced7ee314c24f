"""What one recorded op costs beyond its kernel: tapegrad's bookkeeping against torch autograd's.

A chain of ``tanh`` on a 16-element float32 tensor (the kernel is a few hundred nanoseconds): raw
torch, tapegrad under an open tape (recording), torch with ``requires_grad`` (building its
graph). The difference to raw torch is the per-op bookkeeping. CPU time, best of ``rounds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import tapegrad as tg

__all__ = ["op_overhead"]


def _best(fn: Callable[[], None], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def op_overhead(n: int = 2000, rounds: int = 5) -> dict[str, float]:
    """Microseconds per op: ``raw``, ``tapegrad`` and ``torch``, and each one's bookkeeping over raw."""
    data = torch.randn(16)

    def raw() -> None:
        h = data
        for _ in range(n):
            h = torch.tanh(h)

    def ours() -> None:
        h = tg.Tensor(data, requires_grad=True)
        with tg.Tape():
            for _ in range(n):
                h = h.tanh()

    def theirs() -> None:
        h = data.clone().requires_grad_()
        for _ in range(n):
            h = torch.tanh(h)

    us = {k: _best(fn, rounds) / n * 1e6 for k, fn in (("raw", raw), ("tapegrad", ours), ("torch", theirs))}
    return {**us, "tapegrad bookkeeping": us["tapegrad"] - us["raw"], "torch bookkeeping": us["torch"] - us["raw"]}
