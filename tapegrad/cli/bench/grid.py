"""The width grid: torch, eager tapegrad and the traced step at widths 25 to 2048, batches 10 and 1000.

Each cell trains 2-w-w-w-2 (ReLU, Tanh, MSE, SGD) from the same weights on the same batches,
the contenders interleaved round by round as in the seed benchmark; it reports the median
milliseconds per step and the minor page faults per step (memory the process got back from the
kernel: a multi-MB buffer freed to the OS and touched again on every step shows up here).
"""

from __future__ import annotations

import resource
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from .contenders import starting_point, torch_contender, traced_opt_contender, user_contender
from .interleave import interleaved, wall_seconds

WIDTHS = (25, 128, 512, 2048)
BATCHES = (10, 1000)


def steps_for(width: int, batch: int) -> int:
    """Steps per timed call: about 2e7 multiply-adds a call, 1 to 50 steps."""
    return max(1, min(50, int(2e7 / (batch * width * width))))


def faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _seconds_and_faults(call: Callable[[], object]) -> tuple[float, int]:
    f0 = faults()
    seconds = wall_seconds(call)
    return seconds, faults() - f0


def cell(width: int, batch: int, rounds: int, lr: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """One cell of the grid: ms/step and faults/step of each contender, and its ratio to torch."""
    sizes = (2, width, width, width, 2)
    steps = steps_for(width, batch)
    weights, batches = starting_point(sizes, batch * steps, batch, seed)
    made: dict[str, Callable[[], None]] = {
        "torch": torch_contender(weights, batches, lr)[0],
        "eager": user_contender(weights, batches, lr, sizes)[0],
        "traced": traced_opt_contender(weights, batches, lr, sizes)[0],
    }
    # warm up; the traced step: trace, check, compile, check the graph, fold the optimizer
    for name, epoch in made.items():
        for _ in range(1 if name != "traced" else -(-6 // steps)):
            epoch()
    samples = interleaved(made, rounds, _seconds_and_faults)
    times = {k: [seconds / steps for seconds, _ in v] for k, v in samples.items()}
    flts = {k: [n // steps for _, n in v] for k, v in samples.items()}
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {
        "width": width,
        "batch": batch,
        "steps": steps,
        "ms": ms,
        "faults": {k: statistics.median(v) for k, v in flts.items()},
        "ratio": {k: ms[k] / ms["torch"] for k in made if k != "torch"},
    }


def grid_benchmark(
    rounds: int, widths: Sequence[int] = WIDTHS, batches: Sequence[int] = BATCHES
) -> list[dict[str, Any]]:
    """Every (width, batch) cell."""
    return [cell(w, b, rounds) for w in widths for b in batches]


def report_grid(cells: list[dict[str, Any]], out: Callable[[str], None] = print) -> None:
    """The grid as a table."""
    out("\nwidth grid 2-w-w-w-2, SGD: median ms/step (minor page faults/step), ratio to torch")
    out(f"  {'width':>5} {'batch':>5}  {'torch':>16} {'eager':>16} {'traced':>16}  {'eager/t':>7} {'traced/t':>8}")
    for c in cells:
        ms, fl = c["ms"], c["faults"]
        cols = "".join(f" {ms[k]:9.3f} ({fl[k]:4.0f})" for k in ("torch", "eager", "traced"))
        out(f"  {c['width']:5d} {c['batch']:5d} {cols}  {c['ratio']['eager']:7.3f} {c['ratio']['traced']:8.3f}")
