"""torch's data set classes: `Dataset`, `IterableDataset`, `TensorDataset`, `Subset`, `ConcatDataset`,
and `random_split` (the same split as torch's for the same generator)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from tapegrad.engine.tensors import Tensor

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "random_split"]


class Dataset:
    """A map-style data set: ``__getitem__(index)`` returns one sample, ``__len__`` how many there are."""

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: ``__iter__`` yields them (a `DataLoader` batches them in order)."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class TensorDataset(Dataset):
    """Samples ``(t[i] for t in tensors)``: torch or tapegrad tensors of equal first dimension."""

    def __init__(self, *tensors: Any) -> None:
        sizes = [len(t) for t in tensors]
        if any(s != sizes[0] for s in sizes):
            raise ValueError(f"TensorDataset: size mismatch between tensors: first dimensions {sizes}")
        self.tensors = tensors

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0]) if self.tensors else 0


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several map-style data sets one after another."""

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes: list[int] = []
        total = 0
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][index - start]


def _lengths(n: int, lengths: Sequence[float]) -> list[int]:
    """Counts from ``lengths`` (counts, or fractions summing to 1 as torch takes them)."""
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        if any(not 0 <= f <= 1 for f in lengths):
            raise ValueError(f"random_split: fractions must lie in [0, 1], got {list(lengths)}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # the remainder, one each, round-robin
            counts[i % len(counts)] += 1
        return counts
    if any(not float(c).is_integer() or c < 0 for c in lengths):
        raise ValueError(f"random_split: lengths must be non-negative counts or fractions, got {list(lengths)}")
    counts = [int(c) for c in lengths]
    if sum(counts) != n:
        raise ValueError(
            f"random_split: sum of input lengths ({sum(counts)}) does not equal the length of the dataset ({n})"
        )
    return counts


def random_split(dataset: Any, lengths: Sequence[float], generator: torch.Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping `Subset`s of the given lengths (or fractions), in a random
    order drawn from ``generator`` (the global one by default): torch's split for the same seed."""
    if isinstance(dataset, Tensor):
        raise TypeError("random_split: pass a data set (such as TensorDataset(x, y)), not a tensor")
    counts = _lengths(len(dataset), lengths)
    order = torch.randperm(sum(counts), generator=generator).tolist()
    subsets, start = [], 0
    for count in counts:
        subsets.append(Subset(dataset, order[start : start + count]))
        start += count
    return subsets
