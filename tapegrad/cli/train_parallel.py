"""`tapegrad train --nproc N`: the seed network trained data-parallel on N local processes.

`nn.parallel.spawn` (torch's launcher underneath) starts N processes in a gloo process group
(nccl with a GPU each); every process runs the same rounds with the model wrapped in
`nn.parallel.DistributedDataParallel` and its `nn.data.DistributedSampler` shard; rank 0
prints the table and writes the outputs. Started by torchrun instead (``torchrun
--nproc-per-node N -m tapegrad train``), the processes join torchrun's group.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist

import tapegrad.nn as nn

from .train_rounds import run_rounds

__all__ = ["run_parallel", "launched_by_torchrun"]

COLLECTIVE_TIMEOUT_S = 120.0  # a rank that stops answering fails the others after this long


def launched_by_torchrun() -> bool:
    """True in a process that torchrun started as one of several (its environment names a world size > 1)."""
    return os.environ.get("TORCHELASTIC_RUN_ID") is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1


def _worker(rank: int, args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    status = run_rounds(args, parallel=True)
    if status:
        sys.exit(status)  # rank 0 already said why (a diverged run); the launcher sees the status


def _under_torchrun(args: argparse.Namespace) -> int:
    world = int(os.environ["WORLD_SIZE"])
    if args.nproc > 1:
        print(f"tapegrad train: error: --nproc {args.nproc}: torchrun already started {world} processes; "
              "leave --nproc out", file=sys.stderr)  # fmt: skip
        return 2
    if args.n_train % world:
        print(f"tapegrad train: error: {world} processes do not divide --n-train {args.n_train}", file=sys.stderr)
        return 2
    import datetime

    backend = nn.parallel.default_backend(int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    try:
        return run_rounds(args, parallel=True)
    finally:
        dist.destroy_process_group()


def run_parallel(args: argparse.Namespace) -> int:
    """Run `run_rounds` on ``args.nproc`` processes (or torchrun's); exit status 1 if a process failed."""
    if launched_by_torchrun():
        return _under_torchrun(args)
    try:
        nn.parallel.spawn(_worker, args.nproc, (args,), timeout=COLLECTIVE_TIMEOUT_S)
    except nn.parallel.DistributedError as err:
        exitcodes: dict[int, int] = getattr(err, "exitcodes", {})  # rank -> exit status (spawn joined them)
        statuses = set(exitcodes.values())
        if not getattr(err, "raised", True) and len(statuses) == 1 and statuses.pop() > 0:
            return max(exitcodes.values())  # every rank stopped with the same status, reported by rank 0
        print(f"tapegrad train: error: {err}", file=sys.stderr)
        return 1
    return 0
