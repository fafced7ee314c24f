"""The memory check of `tapegrad bench`: RSS growth over many training steps, and what a used
one-shot tape still holds."""

from __future__ import annotations

import gc
import os
import resource
import sys
import weakref
from typing import Any

import torch

import tapegrad as tg

from .contenders import SEED_SIZES, starting_point, tapegrad_contender, traced_contender

__all__ = ["rss_mb", "memory_benchmark", "one_shot_tape_check"]


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def memory_benchmark(steps: int, n: int = 1000, batch: int = 10, lr: float = 0.05) -> dict[str, Any]:
    """RSS growth over ``steps`` eager and traced training steps; what a used one-shot tape holds."""
    weights, batches = starting_point(SEED_SIZES, n, batch, 0)
    growth = {}
    for name, make in (("tapegrad", tapegrad_contender), ("traced", traced_contender)):
        epoch, _ = make(weights, batches, lr)
        epoch()  # warm up: allocator pools, the trace
        gc.collect()
        before = rss_mb()
        for _ in range(max(1, steps // len(batches))):
            epoch()
        gc.collect()
        growth[name] = rss_mb() - before
    return {"steps": max(1, steps // len(batches)) * len(batches), "growth_mb": growth, **one_shot_tape_check()}


def one_shot_tape_check() -> dict[str, Any]:
    """After its gradient, a one-shot tape keeps no records and no intermediate tensor alive."""
    w = tg.Tensor(torch.randn(25, 2), requires_grad=True)
    x = tg.Tensor(torch.randn(10, 2))
    with tg.Tape() as tape:
        hidden = tg.ops.relu(tg.ops.linear(x, w))
        loss = (hidden * hidden).mean()
    alive = weakref.ref(hidden)
    del hidden
    tape.gradient(loss, w)
    gc.collect()
    return {"tape_records_after": len(tape), "intermediate_alive_after": alive() is not None}
