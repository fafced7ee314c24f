"""Data for the seed task: the disk data set, normalisation, batches and k-fold splits."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from tapegrad.engine.tensors import Tensor, wrap

from .dataloader import BatchSampler, DataLoader, RandomSampler, Sampler, SequentialSampler, default_collate
from .datasets import ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from .sampler import DistributedSampler
from .validation import check_bool, check_data, check_int, check_tensor

__all__ = ["disk_dataset", "normalize", "Batches", "batches", "kfold_indices", "DistributedSampler"]
__all__ += [
    "Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "DataLoader",
    "Sampler", "SequentialSampler", "RandomSampler", "BatchSampler", "default_collate",
]  # fmt: skip

DISK_RADIUS = 1 / math.sqrt(2 * math.pi)  # the disk covers half of the unit square


def _generator(seed: int | None) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(seed)


def _raw(t: Any) -> torch.Tensor:
    return t.data if isinstance(t, Tensor) else torch.as_tensor(t)


def _like(original: Any, data: torch.Tensor) -> Any:
    """``data`` as the same kind of tensor as ``original`` (tg.Tensor in, tg.Tensor out)."""
    return wrap(data) if isinstance(original, Tensor) else data


def disk_dataset(n: int, seed: int | None = None, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``n`` points uniform in [0, 1]^2 with label 1 inside the disk of radius 1/sqrt(2 pi) at (0.5, 0.5).

    Returns ``(x, y)``: float inputs of shape (n, 2) and int64 labels of shape (n,), as
    tg.Tensors. With a ``seed`` the draw uses its own generator (the global RNG is untouched).
    """
    check_int("disk_dataset", "n", n, low=0)
    if seed is not None:
        check_int("disk_dataset", "seed", seed)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"disk_dataset: dtype must be a floating point torch.dtype, got {dtype!r}")
    x = torch.rand(n, 2, generator=_generator(seed), dtype=dtype)
    y = ((x - 0.5).pow(2).sum(1) < DISK_RADIUS**2).long()
    return wrap(x), wrap(y)


def normalize(train: Any, *others: Any) -> tuple[Any, ...]:
    """Standardise ``train`` and ``others`` with the mean and std of ``train`` (per feature).

    Returns the normalised tensors in the order given, each of its input's kind (tg or torch).
    """
    for i, t in enumerate((train, *others)):
        check_tensor("normalize", "train" if i == 0 else f"others[{i - 1}]", t)
    data = _raw(train)
    mean = data.mean(0, keepdim=True)
    std = data.std(0, keepdim=True) if len(data) > 1 else torch.ones_like(mean)  # one sample: no spread
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(_like(t, (_raw(t) - mean) / std) for t in (train, *others))


class Batches:
    """Mini-batches ``(xb, yb)`` of a data set ``(x, y)``; iterate once per epoch.

    With ``shuffle`` every pass draws a new order from a generator seeded with ``seed``, so
    two iterators with the same seed give the same batches. Batches are tensors of the same
    kind as the data (tg or torch) and share nothing with it but values. A ``sampler`` (such as
    `DistributedSampler`) chooses the samples and their order instead of ``shuffle``.
    """

    def __init__(
        self,
        data: tuple[Any, Any],
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        sampler: Any = None,
    ) -> None:
        x, y = check_data("batches", "data", data)
        check_int("batches", "batch_size", batch_size, low=1)
        check_bool("batches", "shuffle", shuffle)
        check_bool("batches", "drop_last", drop_last)
        if seed is not None:
            check_int("batches", "seed", seed)
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        if sampler is not None and shuffle:
            raise ValueError("batches: sampler and shuffle=True exclude each other (the sampler sets the order)")
        self.sampler = sampler

    def __len__(self) -> int:
        n = len(_raw(self.x)) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        x, y = _raw(self.x), _raw(self.y)
        if self.sampler is not None:
            order = torch.as_tensor(list(self.sampler), dtype=torch.long)
            x, y = x[order], y[order]
        n = len(x)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator)
            x, y = x[order], y[order]
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            end = start + self.batch_size
            yield _like(self.x, x[start:end]), _like(self.y, y[start:end])


def batches(
    data: tuple[Any, Any],
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    drop_last: bool = False,
    sampler: Any = None,
) -> Batches:
    """Mini-batches of ``data = (x, y)``: see `Batches`."""
    return Batches(data, batch_size, shuffle, seed, drop_last, sampler=sampler)


def kfold_indices(n: int, k: int, seed: int | None = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``k`` (train, validation) index pairs: a seeded permutation cut into k nearly equal folds."""
    check_int("kfold_indices", "n", n, low=0)
    check_int("kfold_indices", "k", k)
    if not 2 <= k <= n:
        raise ValueError(f"k-fold needs 2 <= k <= n, got k={k}, n={n}")
    order = torch.randperm(n, generator=_generator(seed)) if seed is not None else torch.arange(n)
    folds = torch.tensor_split(order, k)
    return [(torch.cat([f for j, f in enumerate(folds) if j != i]), folds[i]) for i in range(k)]
