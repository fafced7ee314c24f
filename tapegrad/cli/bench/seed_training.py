"""Benchmark: train the seed network with tapegrad (eager and traced), PyTorch autograd and by hand.

The seed network is 2-25-25-25-2 (ReLU hidden, Tanh out), trained with SGD on the MSE loss,
batch 10, 1000 samples an epoch, float32. Four contenders train copies of the same initial
weights on the same batches (`contenders`), in one process, one epoch each per round, in a rotating order
(interleaved, so that a noisy neighbour slows all of them alike); the table shows medians:

- ``floor``: raw torch forward, hand-written backward, in-place SGD (no graph at all);
- ``torch``: ``torch.nn`` + ``torch.optim.SGD`` + ``loss.backward()``;
- ``tapegrad``: ``nn.Sequential`` / ``nn.MSELoss`` / ``nn.SGD`` under a ``tg.Tape``;
- ``traced``: the same step through ``tg.trace`` (recorded once, then replayed), then ``nn.SGD``;
- ``user``: eager tapegrad written as a user writes it;
- ``traced+opt``: ``tg.trace(step, optimizer=opt)``, the SGD step folded into the traced call;
- ``jax``: the same step under ``jax.jit`` when jax is installed (`jax_step`).

The width grid (`grid`: widths 25 to 2048, batches 10 and 1000, with page faults) and the GPU
section (`gpu`, skipped without CUDA) come after.

Also the compute-bound case (batch 1000, widths 512) and the memory check (RSS growth over
10,000 training steps; a one-shot tape holds nothing after its gradient). Run it with
``tapegrad bench`` (``tapegrad bench --help``) or ``python benchmarks/seed_training.py``.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch

import tapegrad as tg

from ..args import Parser, positive_int, thread_count
from . import checkpoint_io, gpu, grid, jax_step, models, models_report
from .contenders import (
    SEED_SIZES,
    floor_contender,
    seed_data,
    tapegrad_contender,
    tapegrad_model,
    torch_contender,
    traced_contender,
    traced_opt_contender,
    user_contender,
    weights_of,
)

GOALS = {
    "user/torch": 0.60,
    "traced+opt/torch": 0.25,
    "traced+opt/jax": 1.0,
    "traced/floor": 1.15,
    "compute tapegrad/torch": 1.05,
    "grid": 1.05,
    "memory MB": 5.0,
}


# --- measuring --------------------------------------------------------------------------------
def interleaved(
    contenders: dict[str, Callable[[], None]],
    rounds: int,
    warmup: int = 1,
    after_warmup: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each contender: ``rounds`` rounds, the order rotating every round."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    if after_warmup is not None:
        after_warmup()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            gc.collect()
            t0 = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def seed_benchmark(
    rounds: int, n: int = 1000, batch: int = 10, lr: float = 0.05, seed: int = 0, jax: bool = True
) -> dict[str, Any]:
    """Time the contenders on the seed network; check that they trained the same weights."""
    torch.manual_seed(seed)
    weights = weights_of(tapegrad_model(SEED_SIZES))
    batches = seed_data(n, batch, seed)
    made: dict[str, tuple[Callable[[], None], list[torch.Tensor] | Callable[[], list[torch.Tensor]]]] = {
        "floor": floor_contender(weights, batches, lr),
        "torch": torch_contender(weights, batches, lr),
        "tapegrad": tapegrad_contender(weights, batches, lr),
        "user": user_contender(weights, batches, lr, SEED_SIZES),
        "traced": traced_contender(weights, batches, lr),
        "traced+opt": traced_opt_contender(weights, batches, lr, SEED_SIZES),
    }
    if jax and jax_step.available():
        made["jax"] = jax_step.jax_contender(weights, batches, lr)
    params = {k: v[1] for k, v in made.items()}
    agree: dict[str, float] = {}

    def compare() -> None:  # after one epoch (100 SGD steps) from the same weights on the same batches
        got = {k: p() if callable(p) else p for k, p in params.items()}
        agree.update({k: _max_diff(got[k], got["tapegrad"]) for k in got if k != "tapegrad"})

    times = interleaved({k: v[0] for k, v in made.items()}, rounds, after_warmup=compare)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "epochs": rounds + 1,
        "samples": n,
        "median_s": median,
        "times_s": times,
        "ratios": {
            "tapegrad/torch": median["tapegrad"] / median["torch"],
            "user/torch": median["user"] / median["torch"],
            "traced+opt/torch": median["traced+opt"] / median["torch"],
            **({"traced+opt/jax": median["traced+opt"] / median["jax"]} if "jax" in median else {}),
            "traced/floor": median["traced"] / median["floor"],
            "traced/torch": median["traced"] / median["torch"],
            "tapegrad/floor": median["tapegrad"] / median["floor"],
            "torch/floor": median["torch"] / median["floor"],
        },
        "max_weight_diff": agree,
    }


def compute_benchmark(rounds: int, n: int = 1000, width: int = 512, lr: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """The compute-bound case: one step of batch ``n`` per epoch, hidden widths ``width``."""
    sizes = (2, width, width, width, 2)
    torch.manual_seed(seed)
    weights = weights_of(tapegrad_model(sizes))
    batches = seed_data(n, n, seed)
    made = {
        "torch": torch_contender(weights, batches, lr),
        "tapegrad": tapegrad_contender(weights, batches, lr, sizes),
    }
    agree = []
    times = interleaved(
        {k: v[0] for k, v in made.items()},
        rounds,
        after_warmup=lambda: agree.append(_max_diff(made["torch"][1], made["tapegrad"][1])),
    )
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_s": median,
        "ratio": median["tapegrad"] / median["torch"],
        "width": width,
        "batch": n,
        "max_weight_diff": agree[0],
    }


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
    torch.manual_seed(0)
    weights = weights_of(tapegrad_model(SEED_SIZES))
    batches = seed_data(n, batch, 0)
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


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((u - v).abs().max()) for u, v in zip(a, b))


# --- reporting --------------------------------------------------------------------------------
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
    out: Callable[[str], None] = print,
    cells: list[dict[str, Any]] | None = None,
) -> bool:
    """Print the tables and the goals; True when every measured goal is met."""
    ok = True

    def goal(name: str, value: float, limit: float, text: str) -> None:
        nonlocal ok
        met = value <= limit
        ok = ok and met
        out(f"  {'PASS' if met else 'FAIL'}  {text:<44} {value:7.3f}  (goal <= {limit})")

    out(f"machine: {machine()}")
    if seed:
        med = seed["median_s"]
        out(
            f"\nseed network 2-25-25-25-2, batch 10, {seed['samples']} samples/epoch: median ms/epoch "
            f"of {seed['epochs']} epochs"
        )
        out(f"  {'contender':<10} {'ms/epoch':>9} {'x floor':>8} {'x torch':>8}  max |w - w_tapegrad| after 1 epoch")
        for name, t in med.items():
            diff = seed["max_weight_diff"].get(name, 0.0)
            out(f"  {name:<10} {t * 1e3:9.2f} {t / med['floor']:8.3f} {t / med['torch']:8.3f}  {diff:.2e}")
    if compute:
        med = compute["median_s"]
        w, n = compute["width"], compute["batch"]
        out(f"\ncompute-bound: batch {n}, widths {w} (2-{w}-{w}-{w}-2): median ms/step")
        for name, t in med.items():
            out(f"  {name:<10} {t * 1e3:9.2f}")
    if cells:
        grid.report_grid(cells, out)
    if memory:
        out(f"\nmemory: RSS growth over {memory['steps']} training steps")
        for name, mb in memory["growth_mb"].items():
            out(f"  {name:<10} {mb:+8.2f} MB")
        out(
            f"  one-shot tape after its gradient: {memory['tape_records_after']} records, intermediate "
            f"{'still alive' if memory['intermediate_alive_after'] else 'freed'}"
        )
    out("\ngoals: (a FAIL is reported, not an error; `tapegrad bench --check` makes it exit status 1)")
    if seed:
        ratios = seed["ratios"]
        goal("", ratios["user/torch"], GOALS["user/torch"], "tapegrad eager (user-style) / torch autograd")
        goal("", ratios["traced+opt/torch"], GOALS["traced+opt/torch"], "traced step with optimizer / torch autograd")
        if "traced+opt/jax" in ratios:
            goal("", ratios["traced+opt/jax"], GOALS["traced+opt/jax"], "traced step with optimizer / JAX jit step")
        else:
            out("  ----  traced step / JAX jit step: jax is not installed (pip install tapegrad[bench])")
        goal("", ratios["traced/floor"], GOALS["traced/floor"], "tapegrad traced / hand-written floor")
    if compute:
        goal("", compute["ratio"], GOALS["compute tapegrad/torch"], "compute-bound tapegrad / torch")
    for c in cells or ():
        for k, v in c["ratio"].items():
            goal("", v, GOALS["grid"], f"width {c['width']}, batch {c['batch']}: {k} / torch")
    if memory:
        for name, mb in memory["growth_mb"].items():
            goal("", mb, GOALS["memory MB"], f"RSS growth, {name} (MB)")
        tape_ok = memory["tape_records_after"] == 0 and not memory["intermediate_alive_after"]
        ok = ok and tape_ok
        out(f"  {'PASS' if tape_ok else 'FAIL'}  one-shot tape holds nothing after its gradient")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Command line: run the benchmark and print the table; exit status 0 (1 under ``--check`` if a goal is missed)."""
    parser = Parser(prog="tapegrad bench", description=__doc__.split("\n")[0])  # one-line errors, exit 2
    parser.add_argument("--rounds", type=positive_int, default=40, help="timed epochs per contender (default 40)")
    parser.add_argument("--compute-rounds", type=positive_int, default=15, help="timed steps, compute-bound case (15)")
    parser.add_argument("--memory-steps", type=positive_int, default=10_000, help="steps of the memory check (10000)")
    parser.add_argument("--threads", type=thread_count, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--grid-rounds", type=positive_int, default=3, help="timed rounds per width-grid cell (3)")
    parser.add_argument("--gpu-rounds", type=positive_int, default=5, help="timed blocks per GPU case (default 5)")
    parser.add_argument("--no-compile", action="store_true", help="GPU section without torch.compile (slow to compile)")
    parser.add_argument(
        "--gpu-cases", nargs="+", default=list(gpu.CASES), choices=list(gpu.CASES), help="GPU cases (default all)"
    )
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON instead of tables")
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    parser.add_argument("--io-large", action="store_true", help="the io part also saves and loads a 1 GB model")
    parser.add_argument("--io-dir", default=None, help="folder for the io part's files (default: the temp folder)")
    parts = ["seed", "compute", "grid", "memory", "gpu", "jax", "io", "models"]
    parser.add_argument("--skip", nargs="*", default=[], choices=parts, help="parts to skip")
    parser.add_argument("--only", nargs="*", default=None, choices=parts, help="run only these parts (seed has jax)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks that it runs, not timings")
    parser.add_argument("--model-rounds", type=positive_int, default=3, help="timed rounds per model (default 3)")
    parser.add_argument("--model-steps", type=positive_int, default=4, help="training steps per model and round (4)")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a goal is missed (default: report it, exit 0)"
    )
    args = parser.parse_args(argv)
    skip = set(args.skip) if args.only is None else set(parts) - set(args.only)
    if args.quick:
        args.rounds, args.compute_rounds, args.memory_steps, args.grid_rounds, args.gpu_rounds = 2, 1, 200, 1, 1
        args.model_rounds, args.model_steps = 1, 1
    torch.set_num_threads(args.threads)
    seed = (
        None
        if "seed" in skip
        else seed_benchmark(args.rounds, n=200 if args.quick else 1000, jax="jax" not in args.skip)
    )
    width = 64 if args.quick else 512
    compute = None if "compute" in skip else compute_benchmark(args.compute_rounds, width=width)
    cells = None
    if "grid" not in skip:
        widths, batches = ((25, 128), (10,)) if args.quick else (grid.WIDTHS, grid.BATCHES)
        cells = grid.grid_benchmark(args.grid_rounds, widths, batches)
    memory = None if "memory" in skip else memory_benchmark(args.memory_steps)
    out = (lambda *_: None) if args.json else print
    ok = report(seed, compute, memory, out=out, cells=cells) if seed or compute or memory or cells else True
    model_results = None
    if "models" not in skip:
        if not (seed or compute or memory or cells):
            out(f"machine: {machine()}")
        model_results = models.models_benchmark(args.model_rounds, args.model_steps)
        ok = models_report.report_models(model_results, out=out) and ok
    gpu_results = None
    if "gpu" not in skip:
        gpu_results = gpu.gpu_benchmark(args.gpu_rounds, args.gpu_cases, compile=not args.no_compile, out=out)
        if gpu_results is not None:
            gpu_results["max_weight_diff_100_steps"] = gpu.weights_agree(out=out)
    io_rows = None
    if "io" not in skip:
        sizes: tuple[int, ...] = (checkpoint_io.SIZES_MB[0],) if args.quick else checkpoint_io.SIZES_MB
        if args.io_large:
            sizes += (checkpoint_io.LARGE_MB,)
        io_rows = checkpoint_io.io_benchmark(sizes, args.io_dir, rounds=1 if args.quick else 3)
        ok = checkpoint_io.report(io_rows, out=out) and ok
    if args.json:
        results = {"seed": seed, "compute": compute, "memory": memory, "grid": cells, "gpu": gpu_results, "io": io_rows}
        results["models"] = model_results
        print(json.dumps({"command": "bench", "machine": machine(), **results, "goals_met": ok}, indent=2))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
