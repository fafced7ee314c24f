"""The tables and the goals of `tapegrad bench`'s seed parts: the seed network, the compute-bound
case, the width grid and the memory check (`seed_training`, `grid`, `memory`)."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import torch

from . import grid
from .goals import Verdicts

__all__ = ["machine", "report"]

Out = Callable[[str], None]

GOALS = {
    "tapegrad/torch": 0.55,  # issue 22: the eager (fused) step
    "user/torch": 0.60,
    "traced+opt/torch": 0.18,  # issue 26 (with JAX's jit below: traced+opt/jax)
    "traced+opt/jax": 1.0,
    "traced/floor": 1.15,
    "compute tapegrad/torch": 1.05,
    "grid": 1.05,
    "memory MB": 5.0,
}


def machine() -> str:
    """One line about where this ran."""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}, torch threads {torch.get_num_threads()}"
    )


def report(
    seed: dict[str, Any] | None,
    compute: dict[str, Any] | None,
    memory: dict[str, Any] | None,
    out: Out = print,
    cells: list[dict[str, Any]] | None = None,
) -> bool:
    """Print the tables, then the goals; True when every measured goal is met."""
    out(f"machine: {machine()}")
    if seed:
        _seed_table(seed, out)
    if compute:
        _compute_table(compute, out)
    if cells:
        grid.report_grid(cells, out)
    if memory:
        _memory_table(memory, out)
    out("\ngoals: (a FAIL is reported, not an error; `tapegrad bench --check` makes it exit status 1)")
    verdicts = Verdicts(out)
    if seed:
        _seed_goals(seed["ratios"], verdicts)
    if compute:
        verdicts.at_most(compute["ratio"], GOALS["compute tapegrad/torch"], "compute-bound tapegrad / torch")
    for c in cells or ():
        for k, v in c["ratio"].items():
            verdicts.at_most(v, GOALS["grid"], f"width {c['width']}, batch {c['batch']}: {k} / torch")
    if memory:
        for name, mb in memory["growth_mb"].items():
            verdicts.at_most(mb, GOALS["memory MB"], f"RSS growth, {name} (MB)")
        tape_ok = memory["tape_records_after"] == 0 and not memory["intermediate_alive_after"]
        verdicts.holds(tape_ok, "one-shot tape holds nothing after its gradient")
    return verdicts.met


def _seed_table(seed: dict[str, Any], out: Out) -> None:
    med = seed["median_s"]
    out(
        f"\nseed network 2-25-25-25-2, batch 10, {seed['samples']} samples/epoch: median ms/epoch "
        f"of {seed['epochs']} epochs"
    )
    out(f"  {'contender':<10} {'ms/epoch':>9} {'x floor':>8} {'x torch':>8}  max |w - w_tapegrad| after 1 epoch")
    for name, t in med.items():
        diff = seed["max_weight_diff"].get(name, 0.0)
        out(f"  {name:<10} {t * 1e3:9.2f} {t / med['floor']:8.3f} {t / med['torch']:8.3f}  {diff:.2e}")
    out(f"  (traced, traced+opt: tg.trace(..., executor={seed.get('traced_executor', 'auto')!r}))")


def _compute_table(compute: dict[str, Any], out: Out) -> None:
    w, n = compute["width"], compute["batch"]
    out(f"\ncompute-bound: batch {n}, widths {w} (2-{w}-{w}-{w}-2): median ms/step")
    for name, t in compute["median_s"].items():
        out(f"  {name:<10} {t * 1e3:9.2f}")


def _memory_table(memory: dict[str, Any], out: Out) -> None:
    out(f"\nmemory: RSS growth over {memory['steps']} training steps")
    for name, mb in memory["growth_mb"].items():
        out(f"  {name:<10} {mb:+8.2f} MB")
    out(
        f"  one-shot tape after its gradient: {memory['tape_records_after']} records, intermediate "
        f"{'still alive' if memory['intermediate_alive_after'] else 'freed'}"
    )


def _seed_goals(ratios: dict[str, float], verdicts: Verdicts) -> None:
    verdicts.at_most(ratios["tapegrad/torch"], GOALS["tapegrad/torch"], "tapegrad eager / torch autograd")
    verdicts.at_most(ratios["user/torch"], GOALS["user/torch"], "tapegrad eager (user-style) / torch autograd")
    verdicts.at_most(
        ratios["traced+opt/torch"], GOALS["traced+opt/torch"], "traced step with optimizer / torch autograd"
    )
    if "traced+opt/jax" in ratios:
        verdicts.at_most(ratios["traced+opt/jax"], GOALS["traced+opt/jax"], "traced step with optimizer / JAX jit step")
    else:
        verdicts.out("  ----  traced step / JAX jit step: jax is not installed (pip install tapegrad[bench])")
    verdicts.at_most(ratios["traced/floor"], GOALS["traced/floor"], "tapegrad traced / hand-written floor")
