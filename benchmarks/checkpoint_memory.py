"""Peak memory of one training step of a deep MLP, with and without `tg.checkpoint`.

Each case runs in a fresh subprocess, which reports the growth of its resident set's high-water
mark (``ru_maxrss``) over one forward + backward pass, measured from just before the step (model
and batch already built). glibc's dynamic mmap threshold is pinned, so that freed activations go
back to the system and the high-water mark follows the bytes alive. The default problem is the
issue's: 64 layers (Linear + Tanh) of width 256, batch 4096, float32 (about 8 MB of activations
per layer), a checkpoint every 8 layers; the goal is a peak at least 3x lower with checkpoints.

    python benchmarks/checkpoint_memory.py [--layers 64] [--width 256] [--batch 4096] [--every 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # a source checkout without an install


def peak_kib() -> int:
    """This process's resident set high-water mark in KiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def step(model, x, every: int) -> tuple:
    """One forward + backward pass, checkpointing every ``every`` layers (0: never); (loss, records)."""
    import nn
    import tapegrad as tg

    blocks = list(model)
    with tg.Tape() as tape:
        h = x
        if every:
            for i in range(0, len(blocks), every):
                h = tg.checkpoint(nn.Sequential(*blocks[i : i + every]), h)
        else:
            h = model(h)
        loss = (h * h).mean()
    records = len(tape)
    tape.backward(loss)
    return loss, records


def one_step(layers: int, width: int, batch: int, every: int) -> dict:
    """Build the model and batch, then run one step; ``every=0`` means no checkpoints."""
    import torch

    import nn
    import tapegrad as tg

    torch.manual_seed(0)
    torch.set_num_threads(1)

    def mlp(n: int, w: int) -> nn.Sequential:
        return nn.Sequential(*[nn.Sequential(nn.Linear(w, w), nn.Tanh()) for _ in range(n)])

    step(mlp(2, 4), tg.Tensor(torch.randn(2, 4)), min(every, 1))  # one-time costs (lazy imports, kernels) first
    model = mlp(layers, width)
    x = tg.Tensor(torch.randn(batch, width))
    before = peak_kib()
    start = time.perf_counter()
    loss, records = step(model, x, every)
    seconds = time.perf_counter() - start
    grad_norm = float(sum(float((p.grad.data.double() ** 2).sum()) for p in model.parameters()) ** 0.5)
    return {
        "every": every,
        "records": records,
        "peak_growth_mib": (peak_kib() - before) / 1024,
        "seconds": seconds,
        "loss": float(loss.data),
        "grad_norm": grad_norm,
    }


def run_case(args: argparse.Namespace, every: int) -> dict:
    """One case in a fresh interpreter, so that each has its own high-water mark."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    cmd = [sys.executable, __file__, "--case", str(every)]
    cmd += ["--layers", str(args.layers), "--width", str(args.width), "--batch", str(args.batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run both cases and print their peaks, the ratio and whether the 3x goal holds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=64)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--every", type=int, default=8, help="layers per checkpointed block")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)  # the child: one case, JSON out
    args = parser.parse_args(argv)
    if args.case is not None:
        print(json.dumps(one_step(args.layers, args.width, args.batch, args.case)))
        return 0
    activation_mib = args.batch * args.width * 4 / 2**20
    print(
        f"MLP of {args.layers} x (Linear({args.width}, {args.width}) + Tanh), batch {args.batch}, float32 "
        f"({activation_mib:.0f} MiB per activation tensor); one forward + backward step per subprocess"
    )
    plain = run_case(args, 0)
    ckpt = run_case(args, args.every)
    for name, r in (("no checkpoints", plain), (f"checkpoint every {args.every} layers", ckpt)):
        print(
            f"  {name:<28} peak growth {r['peak_growth_mib']:8.1f} MiB   {r['records']:4d} records   "
            f"{r['seconds']:.2f} s   loss {r['loss']:.6f}   |grad| {r['grad_norm']:.6f}"
        )
    ratio = plain["peak_growth_mib"] / max(ckpt["peak_growth_mib"], 1e-9)
    same = abs(plain["grad_norm"] - ckpt["grad_norm"]) <= 1e-5 * max(1.0, plain["grad_norm"])
    print(f"  peak memory ratio {ratio:.2f}x (goal >= 3x: {'pass' if ratio >= 3 else 'FAIL'}); same gradients: {same}")
    return 0 if ratio >= 3 and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
