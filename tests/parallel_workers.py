"""What each rank runs in the data-parallel tests (a module of its own: spawned processes import it).

Every scenario writes its results with torch.save to ``out/<scenario>-rank<r>.pt`` for the test
process to check; a scenario that should fail writes the exception it got.
"""

from __future__ import annotations

import os

import torch

import nn
from tapegrad import Tape

N = 200  # samples; 2 ranks x 10 per batch = 20 per step, 10 steps per epoch
PER_RANK_BATCH = 10
SAMPLER_SEED = 5


def data() -> tuple:
    """The disk data in float64 (the same on every rank and in the reference)."""
    return nn.data.disk_dataset(N, seed=11, dtype=torch.float64)


def model(seed: int, width: int = 16) -> nn.Module:
    """A small float64 classifier, initialised from ``seed``."""
    torch.manual_seed(seed)
    layers = [nn.Linear(2, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 2)]
    return nn.Sequential(*layers).double()


def params(m: nn.Module) -> dict[str, torch.Tensor]:
    """The parameter values by name, detached copies."""
    return {name: p.data.clone() for name, p in m.named_parameters()}


def _save(out: str, name: str, rank: int, value: object) -> None:
    torch.save(value, os.path.join(out, f"{name}-rank{rank}.pt"))


def _caught(fn) -> str:
    try:
        fn()
    except Exception as err:  # the test checks the type and the message
        return f"{type(err).__name__}: {err}"
    return "no error"


def scenarios(rank: int, out: str) -> None:
    """Training equality, no_sync accumulation, the start-up checks, and last a rank that fails."""
    # 1. two epochs (20 steps) of nn.fit under DDP; ranks start from different weights (broadcast)
    net = model(seed=rank)
    ddp = nn.parallel.DistributedDataParallel(net, bucket_cap_mb=0.001)  # 1 KB: several buckets
    sampler = nn.data.DistributedSampler(data(), seed=SAMPLER_SEED)
    opt = nn.SGD(ddp.parameters(), lr=0.2, momentum=0.9)
    nn.fit(ddp, nn.CrossEntropyLoss(), opt, data(), epochs=2, batch_size=PER_RANK_BATCH, progress=False,
           sampler=sampler)  # fmt: skip
    _save(out, "fit", rank, {"params": params(net), "buckets": len(ddp._buckets), "shard": sampler.indices()})

    # 2. no_sync: two half micro-batches per step, the first without all-reduce
    net = model(seed=0)
    ddp = nn.parallel.DistributedDataParallel(net)
    opt = nn.SGD(ddp.parameters(), lr=0.2)
    x, y = data()
    shard = nn.data.DistributedSampler((x, y), shuffle=False).indices()
    local_grads = None
    for step in range(5):
        idx = shard[step * PER_RANK_BATCH : (step + 1) * PER_RANK_BATCH]
        halves = (idx[: PER_RANK_BATCH // 2], idx[PER_RANK_BATCH // 2 :])
        with ddp.no_sync():
            with Tape() as tape:
                loss = nn.CrossEntropyLoss()(ddp(x[halves[0]]), y[halves[0]]) * 0.5
            tape.backward(loss)
        if step == 0:
            local_grads = {name: p.grad.data.clone() for name, p in net.named_parameters()}
        with Tape() as tape:
            loss = nn.CrossEntropyLoss()(ddp(x[halves[1]]), y[halves[1]]) * 0.5
        tape.backward(loss)
        opt.step()
        opt.zero_grad()
    _save(out, "no_sync", rank, {"params": params(net), "local_grads": local_grads})

    # 3. start-up checks: different values without init_sync, a different architecture
    values = _caught(lambda: nn.parallel.DistributedDataParallel(model(seed=rank), init_sync=False))
    shapes = _caught(lambda: nn.parallel.DistributedDataParallel(model(seed=0, width=16 + rank)))
    alike = _caught(lambda: nn.parallel.DistributedDataParallel(model(seed=0), init_sync=False))
    _save(out, "checks", rank, {"values": values, "shapes": shapes, "alike": alike})

    # 4. (last: it breaks the process group) rank 1 raises while rank 0 waits in an all-reduce
    failing(rank, out)


def failing(rank: int, out: str) -> None:
    """Rank 1 raises before its third backward pass; rank 0 must fail in the all-reduce, not hang."""
    net = model(seed=0)
    ddp = nn.parallel.DistributedDataParallel(net, timeout=30)
    x, y = data()
    try:
        for step in range(5):
            if rank == 1 and step == 2:
                raise ValueError("rank 1 gave up on purpose")
            with Tape() as tape:
                loss = nn.CrossEntropyLoss()(ddp(x[:10]), y[:10])
            tape.backward(loss)
    except Exception as err:
        _save(out, "failing", rank, f"{type(err).__name__}: {err}")
        raise
    _save(out, "failing", rank, "no error")


def hanging(rank: int, out: str) -> None:
    """Rank 1 stops answering (sleeps) while rank 0 waits for it in an all-reduce."""
    import time

    import torch.distributed as dist

    if rank == 1:
        time.sleep(600)
    dist.all_reduce(torch.ones(3))


def killed(rank: int, out: str) -> None:
    """Rank 1 is killed (SIGKILL) while rank 0 waits for it in an all-reduce."""
    import signal

    import torch.distributed as dist

    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    dist.all_reduce(torch.ones(3))


def hanging_ddp(rank: int, out: str) -> None:
    """Rank 1 stops answering; rank 0's DDP all-reduce gives up after its own 3 s timeout, far
    shorter than the process group's: the gloo work it started is still pending then."""
    import time

    net = model(seed=0)
    ddp = nn.parallel.DistributedDataParallel(net, timeout=3)
    x, y = data()
    if rank == 1:
        time.sleep(600)
    with Tape() as tape:
        loss = nn.CrossEntropyLoss()(ddp(x[:10]), y[:10])
    tape.backward(loss)
