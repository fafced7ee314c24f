"""Timing contenders side by side: each once a round, the order rotating every round, so that a
noisy neighbour on the machine slows all of them alike."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = ["interleaved", "wall_seconds"]

Sample = TypeVar("Sample")


def wall_seconds(call: Callable[[], object]) -> float:
    """Wall seconds of one ``call()``."""
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def interleaved(
    calls: Mapping[str, Callable[[], object]],
    rounds: int,
    measure: Callable[[Callable[[], object]], Sample],
) -> dict[str, list[Sample]]:
    """``measure(call)`` of each call, ``rounds`` rounds, round r starting at the r-th name; the
    garbage collector runs before each measurement, so that none pays for another's garbage."""
    names = list(calls)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()
            samples[name].append(measure(calls[name]))
    return samples
