"""Benchmark: `nn.save` / `nn.load` against safetensors' own save_file / load_file, in MB/s.

Each model is a stack of ``nn.Linear(1000, 1000)`` layers (4 MB each in float32) sized to 4 MB,
100 MB and, with ``--io-large``, 1 GB. Both sides write the same tensors into the same folder
(the system's temporary folder unless ``--io-dir``), each over its own file of the previous
round (so both free the old file's blocks), and read them back from the page cache. The rounds
alternate between the contenders; each figure is the best round, in wall time (the work is disk
and memory bound), with the process time beside it. Both sides get torch's threads (``--threads``).

What each side does (the table says it too):

- ``nn.save``: a CRC-32 of every tensor, a temporary file, fsync, rename over the target, fsync
  of the folder (atomic and durable); ``save_file``: safetensors as shipped (no checksum, no
  fsync: the bytes are in the page cache when it returns, on disk seconds later). The goal is
  against ``save_file``; ``save_file + fsync`` (durable, not atomic) is shown beside it, as the
  cost of durability alone.
- ``nn.load``: every checksum verified before anything changes, then each tensor read into the
  model; ``load_file + copy``: ``model.load_state_dict(load_file(path))``, checking nothing
  (``load_file`` alone maps the file and reads nothing until a tensor is used; shown too).

``save growth`` is how far the process's resident high-water mark rose during the first
`nn.save` of the model (``ru_maxrss``, Linux): the goal is at most one tensor (4 MB) above
the model, which is already resident. The time goal: within 1.5x of safetensors either way.
"""

from __future__ import annotations

import gc
import os
import resource
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

import tapegrad.nn as nn
from tapegrad._optional import require

__all__ = ["SIZES_MB", "LARGE_MB", "GOAL_RATIO", "io_benchmark", "report"]

SIZES_MB = (4, 100)
LARGE_MB = 1000
GOAL_RATIO = 1.5  # nn.save / nn.load time over safetensors' time for the same tensors
_LAYER_MB = 4  # nn.Linear(1000, 1000) in float32, bias aside


def _model(size_mb: int) -> nn.Sequential:
    with torch.no_grad():
        return nn.Sequential(*[nn.Linear(1000, 1000) for _ in range(max(1, size_mb // _LAYER_MB))])


def _best(contenders: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Each contender's best wall time and best process time (all threads) over ``rounds``
    alternating rounds, after one untimed call each."""
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    cpus: dict[str, list[float]] = {name: [] for name in contenders}
    for timed in [False] + [True] * rounds:
        for name, fn in contenders.items():
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            if timed:
                walls[name].append(time.perf_counter() - start)
                cpus[name].append(time.process_time() - start_cpu)
    return {n: min(v) for n, v in walls.items()}, {n: min(v) for n, v in cpus.items()}


def _durable(save_file: Callable[..., None], state: dict, path: str) -> None:
    """safetensors' save, then the fsync that makes it durable (as `nn.save` is)."""
    save_file(state, path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def one_size(size_mb: int, folder: str, rounds: int) -> dict[str, Any]:
    """Save and load times, MB/s and the save's memory growth for one model size."""
    st: Any = require("safetensors.torch", "tapegrad bench --only io (the safetensors baseline)")
    model = _model(size_mb)
    state = model.state_dict()
    mb = sum(t.numel() * t.element_size() for t in state.values()) / 1e6
    ours, theirs = os.path.join(folder, "tapegrad.safetensors"), os.path.join(folder, "plain.safetensors")
    largest = max(t.numel() * t.element_size() for t in state.values()) / 2**20
    before = _peak_mb()
    nn.save(model, ours)  # first: the high-water mark then shows what the save itself added
    growth = _peak_mb() - before
    times, cpu = _best(
        {
            "nn.save": lambda: nn.save(model, ours),
            "save_file+fsync": lambda: _durable(st.save_file, state, theirs),
            "save_file": lambda: st.save_file(state, theirs),
        },
        rounds,
    )
    load_times, load_cpu = _best(
        {
            "nn.load": lambda: nn.load(model, ours),
            "load_file+copy": lambda: model.load_state_dict(st.load_file(theirs)),
            "load_file": lambda: st.load_file(theirs),
        },
        rounds,
    )
    times.update(load_times)
    cpu.update(load_cpu)
    for path in (ours, theirs):
        os.unlink(path)
    return {
        "size_mb": round(mb, 1),
        "times_s": times,
        "mb_per_s": {k: round(mb / t, 1) for k, t in times.items()},
        "ratio": {  # the goal: against safetensors as shipped
            "save": times["nn.save"] / times["save_file"],
            "load": times["nn.load"] / times["load_file+copy"],
        },
        "save_vs_durable": times["nn.save"] / times["save_file+fsync"],  # both sides fsync the file
        # the same in process time, which other jobs on a shared machine hardly change (it counts
        # helper threads' time too, so it shows the work, not a parallel speed-up)
        "cpu_ratio": {
            "save": cpu["nn.save"] / max(cpu["save_file"], 1e-9),
            "load": cpu["nn.load"] / max(cpu["load_file+copy"], 1e-9),
        },
        "save_growth_mb": round(growth, 1),
        "largest_tensor_mb": round(largest, 1),
    }


def io_benchmark(sizes_mb: tuple[int, ...] = SIZES_MB, folder: str | None = None, rounds: int = 3) -> list[dict]:
    """One row per model size (see the module docstring); the 1 GB row only when asked for."""
    # nn.save deletes the file it replaced on a helper thread: the clean-up may find it gone
    with tempfile.TemporaryDirectory(dir=folder, ignore_cleanup_errors=True) as tmp:
        # a small model's save is dominated by two fsyncs whose time varies most: more rounds
        return [one_size(size, tmp, _rounds(size, rounds)) for size in sizes_mb]


def _rounds(size_mb: int, rounds: int) -> int:
    return 3 * rounds if size_mb < 100 else rounds if size_mb < LARGE_MB else max(1, rounds // 2)


def report(rows: list[dict], out: Callable[..., None] = print) -> bool:
    """Print the table and the goals; True when every row meets them."""
    out("\ncheckpoint I/O (MB/s, best of rounds; ratio = tapegrad time / safetensors time, goal <= 1.5)")
    out("  nn.save: CRC-32 per tensor, temporary file, fsync, rename, folder fsync (atomic, durable)")
    out("  save_file: safetensors as shipped, no checksum, no fsync (+fsync: the file fsynced after it)")
    out("  nn.load: every CRC checked before anything changes, then read into the model")
    out("  load_file+copy: model.load_state_dict(load_file(path)), nothing checked (load_file: maps only)")
    out(f"  {'model':>8} {'nn.save':>9} {'save_file':>10} {'ratio':>6} {'save_file+fsync':>16} {'ratio':>6}   "
        f"{'nn.load':>9} {'load_file+copy':>15} {'ratio':>6} {'load_file':>10}   save growth")  # fmt: skip
    ok = True
    for r in rows:
        s, q = r["mb_per_s"], r["ratio"]
        out(f"  {r['size_mb']:>6.0f}MB {s['nn.save']:>9.0f} {s['save_file']:>10.0f} {q['save']:>6.2f} "
            f"{s['save_file+fsync']:>16.0f} {r['save_vs_durable']:>6.2f}   "
            f"{s['nn.load']:>9.0f} {s['load_file+copy']:>15.0f} {q['load']:>6.2f} {s['load_file']:>10.0f}   "
            f"{r['save_growth_mb']:.0f} MB (largest tensor {r['largest_tensor_mb']:.0f} MB)")  # fmt: skip
        c = r["cpu_ratio"]
        out(f"  {'':>8} in CPU time (process time, all threads): save {c['save']:.2f}x, load {c['load']:.2f}x")
        for what, against in (("save", "save_file"), ("load", "load_file+copy")):
            met = q[what] <= GOAL_RATIO
            ok = ok and met
            out(f"  {'PASS' if met else 'FAIL'}  {what} {r['size_mb']:.0f} MB: {q[what]:.2f}x safetensors' {against} "
                f"(goal <= {GOAL_RATIO})")  # fmt: skip
        met = r["save_growth_mb"] <= r["largest_tensor_mb"] + 1
        ok = ok and met
        out(f"  {'PASS' if met else 'FAIL'}  save {r['size_mb']:.0f} MB: memory grew {r['save_growth_mb']:.0f} MB "
            f"(goal <= one tensor, {r['largest_tensor_mb']:.0f} MB)")  # fmt: skip
    return ok
