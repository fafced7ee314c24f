"""The seed network's timings: the contenders trained side by side, and the compute-bound case.

The seed network is 2-25-25-25-2 (ReLU hidden, Tanh out), trained with SGD on the MSE loss,
batch 10, 1000 samples an epoch, float32. The contenders (`contenders`, and `jax_step` when jax is
installed) train copies of the same initial weights on the same batches, in one process, one
epoch each per round, interleaved (`interleave`); the report shows medians. The compute-bound case
trains batch 1000 at widths 512, torch against eager tapegrad.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch

from . import jax_step
from .contenders import (
    SEED_SIZES,
    floor_contender,
    starting_point,
    tapegrad_contender,
    torch_contender,
    traced_contender,
    traced_opt_contender,
    user_contender,
)
from .interleave import interleaved, wall_seconds

__all__ = ["seed_benchmark", "compute_benchmark"]

Params = list[torch.Tensor] | Callable[[], list[torch.Tensor]]

# the ratios of the report: numerator / denominator, in the order shown
RATIOS = (
    ("tapegrad", "torch"),
    ("user", "torch"),
    ("traced+opt", "torch"),
    ("traced+opt", "jax"),
    ("traced", "floor"),
    ("traced", "torch"),
    ("tapegrad", "floor"),
    ("torch", "floor"),
)


def seed_benchmark(
    rounds: int,
    n: int = 1000,
    batch: int = 10,
    lr: float = 0.05,
    seed: int = 0,
    jax: bool = True,
    traced_executor: str = "auto",
) -> dict[str, Any]:
    """Time the contenders on the seed network; check that they trained the same weights. ``traced`` and
    ``traced+opt`` run on ``traced_executor`` (`tapegrad bench`: inductor where it works, its compile in the
    untimed first epoch; "auto" would stay on the Python graph: a run this short does not repay a compile)."""
    weights, batches = starting_point(SEED_SIZES, n, batch, seed)
    made: dict[str, tuple[Callable[[], None], Params]] = {
        "floor": floor_contender(weights, batches, lr),
        "torch": torch_contender(weights, batches, lr),
        "tapegrad": tapegrad_contender(weights, batches, lr),
        "user": user_contender(weights, batches, lr, SEED_SIZES),
        "traced": traced_contender(weights, batches, lr, executor=traced_executor),
        "traced+opt": traced_opt_contender(weights, batches, lr, SEED_SIZES, executor=traced_executor),
    }
    if jax and jax_step.available():
        made["jax"] = jax_step.jax_contender(weights, batches, lr)
    times, agree = _timed_after_one_epoch(made, rounds, reference="tapegrad")
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "epochs": rounds + 1,
        "samples": n,
        "median_s": median,
        "times_s": times,
        "ratios": {f"{a}/{b}": median[a] / median[b] for a, b in RATIOS if a in median and b in median},
        "max_weight_diff": agree,
        "traced_executor": traced_executor,
    }


def compute_benchmark(rounds: int, n: int = 1000, width: int = 512, lr: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """The compute-bound case: one step of batch ``n`` per epoch, hidden widths ``width``."""
    sizes = (2, width, width, width, 2)
    weights, batches = starting_point(sizes, n, n, seed)
    made: dict[str, tuple[Callable[[], None], Params]] = {
        "torch": torch_contender(weights, batches, lr),
        "tapegrad": tapegrad_contender(weights, batches, lr, sizes),
    }
    times, agree = _timed_after_one_epoch(made, rounds, reference="tapegrad")
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_s": median,
        "ratio": median["tapegrad"] / median["torch"],
        "width": width,
        "batch": n,
        "max_weight_diff": agree["torch"],
    }


def _timed_after_one_epoch(
    made: dict[str, tuple[Callable[[], None], Params]], rounds: int, reference: str
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """One epoch of each contender (a warm-up from the same weights on the same batches), how far
    each one's weights then are from ``reference``'s, and the seconds of ``rounds`` interleaved epochs."""
    for epoch, _ in made.values():
        epoch()
    got = {k: params() if callable(params) else params for k, (_, params) in made.items()}
    agree = {k: _max_diff(got[k], got[reference]) for k in got if k != reference}
    return interleaved({k: epoch for k, (epoch, _) in made.items()}, rounds, wall_seconds), agree


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((u - v).abs().max()) for u, v in zip(a, b))
