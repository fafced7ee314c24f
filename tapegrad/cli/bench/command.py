"""Benchmark: train the seed network with tapegrad (eager and traced), PyTorch autograd and by hand.

`tapegrad bench` runs its parts in this order and prints their tables and goals:

- ``seed``: the seed network 2-25-25-25-2 trained by each contender (`seed_training`, `contenders`):
  ``floor`` (raw torch, hand-written backward), ``torch`` (torch.nn + torch.optim), ``tapegrad``
  (nn modules under a ``tg.Tape``), ``traced`` (``tg.trace``), ``user`` (eager tapegrad written as a
  user writes it), ``traced+opt`` (``tg.trace(step, optimizer=opt)``) and ``jax`` (`jax_step`, when
  jax is installed and the ``jax`` part is not skipped);
- ``compute``: the compute-bound case (batch 1000, widths 512; `seed_training`);
- ``grid``: widths 25 to 2048, batches 10 and 1000, with page faults (`grid`);
- ``memory``: RSS growth over 10,000 training steps; a one-shot tape holds nothing after its
  gradient (`memory`);
- ``models``: real models against torch (`models`); ``gpu``: skipped without CUDA (`gpu`);
  ``io``: nn.save/nn.load against safetensors (`checkpoint_io`).

Run it with ``tapegrad bench`` (``tapegrad bench --help``) or ``python benchmarks/seed_training.py``.
"""

from __future__ import annotations

import json
from argparse import Namespace
from collections.abc import Callable
from typing import Any

import torch

from ...tracing.executors import inductor_works
from ..args import Parser, positive_int, thread_count
from . import checkpoint_io, gpu, grid, memory, models, models_report, seed_training
from .seed_report import machine, report

__all__ = ["main"]

PARTS = ["seed", "compute", "grid", "memory", "gpu", "jax", "io", "models"]


def main(argv: list[str] | None = None) -> int:
    """Command line: run the benchmark and print the table; exit status 0 (1 under ``--check`` if a goal is missed)."""
    args = _parser().parse_args(argv)
    skip = set(args.skip) if args.only is None else set(PARTS) - set(args.only)
    if args.quick:
        args.rounds, args.compute_rounds, args.memory_steps, args.grid_rounds, args.gpu_rounds = 2, 1, 200, 1, 1
        args.model_rounds, args.model_steps = 1, 1
    torch.set_num_threads(args.threads)
    results = _seed_parts(args, skip)
    out: Callable[[str], None] = (lambda *_: None) if args.json else print
    ok = True
    if any(results.values()):
        ok = report(results["seed"], results["compute"], results["memory"], out=out, cells=results["grid"])
    elif "models" not in skip:
        out(f"machine: {machine()}")
    model_results = None
    if "models" not in skip:
        model_results = models.models_benchmark(args.model_rounds, args.model_steps, executor=_executor(args))
        ok = models_report.report_models(model_results, out=out) and ok
    results["gpu"] = None if "gpu" in skip else _gpu(args, out)
    results["io"] = None
    if "io" not in skip:
        results["io"] = _io(args)
        ok = checkpoint_io.report(results["io"], out=out) and ok
    if args.json:
        results["models"] = model_results
        print(json.dumps({"command": "bench", "machine": machine(), **results, "goals_met": ok}, indent=2))
    return 1 if args.check and not ok else 0


def _seed_parts(args: Namespace, skip: set[str]) -> dict[str, Any]:
    """The parts on the seed network, each None when skipped (``--quick``: tiny sizes)."""
    seed = None
    if "seed" not in skip:  # the jax contender is part of seed: only ``--skip jax`` drops it
        n = 200 if args.quick else 1000
        executor = _executor(args)
        seed = seed_training.seed_benchmark(args.rounds, n=n, jax="jax" not in args.skip, traced_executor=executor)
    width = 64 if args.quick else 512
    compute = None if "compute" in skip else seed_training.compute_benchmark(args.compute_rounds, width=width)
    cells = None
    if "grid" not in skip:
        widths, batches = ((25, 128), (10,)) if args.quick else (grid.WIDTHS, grid.BATCHES)
        cells = grid.grid_benchmark(args.grid_rounds, widths, batches)
    checked = None if "memory" in skip else memory.memory_benchmark(args.memory_steps)
    return {"seed": seed, "compute": compute, "memory": checked, "grid": cells}


def _executor(args: Namespace) -> str:
    """The traced steps' executor: inductor where it works, its compile in the untimed warm-up (the steps' speed
    after their compile; "auto" would stay on the Python graph in a run this short); ``--quick``: Python (it
    checks that the parts run, and compiles nothing)."""
    if args.quick:
        return "python"
    return "inductor" if inductor_works() else "auto"


def _gpu(args: Namespace, out: Callable[[str], None]) -> dict[str, Any] | None:
    results = gpu.gpu_benchmark(args.gpu_rounds, args.gpu_cases, compile=not args.no_compile, out=out)
    if results is not None:
        results["max_weight_diff_100_steps"] = gpu.weights_agree(out=out)
    return results


def _io(args: Namespace) -> list[dict[str, Any]]:
    sizes: tuple[int, ...] = (checkpoint_io.SIZES_MB[0],) if args.quick else checkpoint_io.SIZES_MB
    if args.io_large:
        sizes += (checkpoint_io.LARGE_MB,)
    return checkpoint_io.io_benchmark(sizes, args.io_dir, rounds=1 if args.quick else 3)


def _parser() -> Parser:
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
    parser.add_argument("--skip", nargs="*", default=[], choices=PARTS, help="parts to skip")
    parser.add_argument("--only", nargs="*", default=None, choices=PARTS, help="run only these parts (seed has jax)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks that it runs, not timings")
    parser.add_argument("--model-rounds", type=positive_int, default=3, help="timed rounds per model (default 3)")
    parser.add_argument("--model-steps", type=positive_int, default=4, help="training steps per model and round (4)")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a goal is missed (default: report it, exit 0)"
    )
    return parser
