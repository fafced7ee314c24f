"""Data-parallel scaling: steps per second on 1 and 2 processes, and how much all-reduce the backward hides.

Each process trains a compute-bound MLP (2 -> width -> width -> width -> 2, ReLU, cross-entropy,
SGD) on its own batch of ``--batch`` samples under `nn.parallel.DistributedDataParallel`, one
torch thread per process, gloo on localhost. Per step it times the forward pass, the backward
pass (which ends once the averaged gradients are in ``.grad``) and the optimizer step. Then,
interleaved step by step so that a busy machine slows each alike, it times the synchronised
backward pass again, the same backward pass under ``no_sync()`` (no communication) and the
bucket all-reduces alone (blocking, back to back). The all-reduce time the backward pass did
not hide is the extra time of the synchronised backward over the local one (medians):

    hidden fraction = 1 - (backward with all-reduce - backward alone) / all-reduce alone

Run from a source checkout: ``python benchmarks/scaling.py`` (``--help`` for the sizes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a source checkout without an install

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import nn  # noqa: E402
from tapegrad import Tape  # noqa: E402


def _model(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2))  # fmt: skip


def _step(ddp, opt, loss_fn, x, y) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    with Tape() as tape:
        loss = loss_fn(ddp(x), y)
    t1 = time.perf_counter()
    tape.backward(loss)
    t2 = time.perf_counter()
    opt.step()
    opt.zero_grad()
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def _worker(rank: int, cfg: dict, out: str) -> None:
    torch.set_num_threads(1)
    ddp = nn.parallel.DistributedDataParallel(_model(cfg["width"]), bucket_cap_mb=cfg["bucket_cap_mb"])
    opt = nn.SGD(ddp.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x, y = nn.data.disk_dataset(cfg["batch"], seed=rank)
    for _ in range(cfg["warmup"]):
        _step(ddp, opt, loss_fn, x, y)
    dist.barrier()
    start = time.perf_counter()
    times = [_step(ddp, opt, loss_fn, x, y) for _ in range(cfg["steps"])]
    total = time.perf_counter() - start
    # then the three kinds of backward pass interleaved, so that a busy machine slows all alike
    synced, local, comm = [], [], []
    buffers = [torch.zeros(b.numel) for b in ddp._buckets]
    for _ in range(cfg["steps"]):
        synced.append(_step(ddp, opt, loss_fn, x, y)[1])
        with ddp.no_sync():
            local.append(_step(ddp, opt, loss_fn, x, y)[1])
        dist.barrier()
        t0 = time.perf_counter()
        for buf in buffers:
            if ddp.world_size > 1:
                dist.all_reduce(buf)
        comm.append(time.perf_counter() - t0)
    if rank == 0:
        med = statistics.median
        result = {
            "nproc": ddp.world_size,
            "steps_per_s": cfg["steps"] / total,
            "samples_per_s": cfg["steps"] * cfg["batch"] * ddp.world_size / total,
            "forward_ms": 1e3 * med(t[0] for t in times),
            "backward_ms": 1e3 * med(t[1] for t in times),
            "backward_synced_ms": 1e3 * med(synced),
            "backward_local_ms": 1e3 * med(local),
            "step_ms": 1e3 * med(t[2] for t in times),
            "allreduce_ms": 1e3 * med(comm),
            "buckets": len(ddp._buckets),
            "megabytes": sum(b.megabytes() for b in ddp._buckets),
        }
        Path(out).write_text(json.dumps(result))


def _hidden(r: dict) -> float | None:
    if r["nproc"] == 1 or r["allreduce_ms"] <= 0:
        return None
    exposed = max(0.0, r["backward_synced_ms"] - r["backward_local_ms"])
    return min(1.0, max(0.0, 1 - exposed / r["allreduce_ms"]))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for each process count; print a table (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nprocs", default="1,2", help="process counts to compare (default 1,2)")
    p.add_argument("--width", type=int, default=512, help="hidden width (default 512)")
    p.add_argument("--batch", type=int, default=1000, help="samples per process and step (default 1000)")
    p.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--bucket-cap-mb", type=float, default=25, help="DDP bucket size in MB (default 25)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    cfg = {k: getattr(args, k) for k in ("width", "batch", "steps", "warmup", "bucket_cap_mb")}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(v) for v in args.nprocs.split(",")):
            out = str(Path(tmp, f"{n}.json"))
            nn.parallel.spawn(_worker, n, (cfg, out), timeout=300)
            result = json.loads(Path(out).read_text())
            result["hidden_fraction"] = _hidden(result)
            results.append(result)
    base = results[0]["samples_per_s"]
    for r in results:
        r["speedup"] = r["samples_per_s"] / base
    if args.json:
        print(json.dumps({"config": cfg, "results": results}, indent=2))
        return 0
    print(f"MLP 2-{args.width}x3-2, batch {args.batch} per process, bucket_cap_mb {args.bucket_cap_mb:g}, "
          f"{args.steps} steps, 1 torch thread per process, gloo")  # fmt: skip
    print(f"{'procs':>5} {'steps/s':>8} {'samples/s':>10} {'speedup':>8} {'fwd ms':>7} {'bwd ms':>7} "
          f"{'bwd sync':>8} {'bwd alone':>9} {'allreduce':>9} {'hidden':>7}")  # fmt: skip
    for r in results:
        hidden = "-" if r["hidden_fraction"] is None else f"{100 * r['hidden_fraction']:.0f}%"
        print(f"{r['nproc']:5d} {r['steps_per_s']:8.2f} {r['samples_per_s']:10.0f} {r['speedup']:7.2f}x "
              f"{r['forward_ms']:7.1f} {r['backward_ms']:7.1f} {r['backward_synced_ms']:8.1f} "
              f"{r['backward_local_ms']:9.1f} {r['allreduce_ms']:9.1f} {hidden:>7}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
