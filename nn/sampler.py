"""`DistributedSampler`: each rank of a data-parallel run its own shard of the sample indices.

torch.utils.data.DistributedSampler's contract: one permutation per epoch, drawn from
``seed + epoch`` (the same on every rank), dealt out round-robin so that rank ``r`` gets
positions ``r, r + R, r + 2R, ...``. Batch ``k`` of every rank together is then exactly batch
``k`` of one process with an R times larger batch over the same permutation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["DistributedSampler"]


def _length(dataset: Any) -> int:
    """Samples in ``dataset``: a count, an ``(x, y)`` pair of equal-length tensors, or anything with len()."""
    if isinstance(dataset, int) and not isinstance(dataset, bool):
        if dataset < 1:
            raise ValueError(f"DistributedSampler: the data set must hold at least one sample, got {dataset}")
        return dataset
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2 and all(hasattr(t, "shape") for t in dataset):
        nx, ny = len(dataset[0]), len(dataset[1])
        if nx != ny:
            raise ValueError(f"DistributedSampler: inputs and targets differ in length: {nx} and {ny}")
        return nx
    if not hasattr(dataset, "__len__"):
        raise TypeError(f"DistributedSampler: dataset must be a sample count, an (x, y) pair or sized, got {dataset!r}")
    return len(dataset)


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "DistributedSampler: num_replicas and rank were not given and torch.distributed is not "
            "initialized; start the process group first (torchrun, nn.parallel.spawn) or pass both"
        )
    return dist.get_world_size(), dist.get_rank()


class DistributedSampler:
    """The sample indices of one rank: ``len(dataset) // num_replicas`` of them, reshuffled per epoch.

    ``dataset`` is a sample count, an ``(x, y)`` pair or anything sized. ``num_replicas`` and
    ``rank`` default to the world size and rank of the default process group. With ``shuffle``
    epoch ``e`` uses the permutation of generator seed ``seed + e`` (call `set_epoch` before each
    epoch; every rank must use the same ``seed``). A world size that does not divide the data
    is an error unless ``drop_last``, which drops the tail (torch pads by repeating samples
    instead, which would count them twice). Pass it as ``sampler=`` to `nn.data.batches` or
    `nn.fit`.
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        n = _length(dataset)
        if num_replicas is None or rank is None:
            world, me = _world()
            num_replicas = world if num_replicas is None else num_replicas
            rank = me if rank is None else rank
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive integer, got {num_replicas!r}")
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas - 1}], got {rank!r}")
        if n % num_replicas and not drop_last:
            raise ValueError(
                f"DistributedSampler: {n} samples do not split evenly over {num_replicas} ranks "
                f"({n % num_replicas} left over); use a data size divisible by the world size or drop_last=True"
            )
        if n < num_replicas:
            raise ValueError(f"DistributedSampler: {n} samples are fewer than the {num_replicas} ranks")
        self.n = n
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.num_samples = n // num_replicas
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of epoch ``epoch`` on the next pass (the same on every rank)."""
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, as an int64 tensor."""
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.n)
        return order[: self.total_size][self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(n={self.n}, num_replicas={self.num_replicas}, rank={self.rank}, "
            f"shuffle={self.shuffle}, seed={self.seed}, epoch={self.epoch})"
        )
