"""`DataLoader` with torch's arguments and torch's batch order, its samplers and `default_collate`.

The loader draws from its random generator exactly as torch's does (a base seed per pass, then the
sampler's permutation), so ``DataLoader(ds, 32, shuffle=True, generator=torch.Generator().manual_seed(0))``
gives the batches of torch's loader built the same way, epoch after epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

from tapegrad.engine.tensors import Tensor, wrap

from .datasets import IterableDataset, TensorDataset

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "BatchSampler", "DataLoader", "default_collate"]


class Sampler:
    """Yields the indices of a data set's samples, in the order to visit them."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation per pass (or ``num_samples`` draws with ``replacement``), from ``generator``
    or, without one, from a seed drawn from the global RNG each pass (torch's draws, in torch's order)."""

    def __init__(
        self, data_source: Any, replacement: bool = False, num_samples: int | None = None, generator: Any = None
    ) -> None:
        self.data_source, self.replacement, self._num_samples, self.generator = (
            data_source, replacement, num_samples, generator,
        )  # fmt: skip
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        """How many indices a pass yields (the data set's length by default)."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        generator = self.generator
        if generator is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator().manual_seed(seed)
        if self.replacement:
            for _ in range(self.num_samples // 32):
                yield from torch.randint(n, (32,), dtype=torch.int64, generator=generator).tolist()
            yield from torch.randint(n, (self.num_samples % 32,), dtype=torch.int64, generator=generator).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from torch.randperm(n, generator=generator).tolist()
            yield from torch.randperm(n, generator=generator).tolist()[: self.num_samples % n]

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler`` (the last one shorter unless ``drop_last``)."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        batch: list[int] = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch as torch does: tensors stacked (tapegrad tensors stay
    tapegrad tensors), numbers into tensors, tuples, lists and dicts collated field by field."""
    first = batch[0]
    if isinstance(first, Tensor):
        return wrap(torch.stack([b.data for b in batch]))
    if isinstance(first, torch.Tensor):
        return torch.stack(list(batch))
    if isinstance(first, bool):
        return torch.tensor(batch)
    if isinstance(first, float):
        return torch.tensor(batch, dtype=torch.float64)
    if isinstance(first, int):
        return torch.tensor(batch)
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, Mapping):
        return {key: default_collate([b[key] for b in batch]) for key in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple
        return type(first)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(first, Sequence):
        if any(len(b) != len(first) for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(s)) for s in zip(*batch)]
        return tuple(fields) if isinstance(first, tuple) else fields
    if hasattr(first, "__array__"):
        return torch.stack([torch.as_tensor(b) for b in batch])
    raise TypeError(f"default_collate: batch must contain tensors, numbers, dicts or lists; found {type(first)}")


class DataLoader:
    """Batches of a data set, with torch's arguments: ``batch_size``, ``shuffle`` (from ``generator``),
    ``sampler`` or ``batch_sampler`` (such as `DistributedSampler`), ``drop_last``, ``collate_fn``, and
    ``num_workers`` (torch's worker processes; the samples must then be torch tensors or numbers).
    ``batch_size=None`` yields single samples."""

    def __init__(
        self, dataset: Any, batch_size: int | None = 1, shuffle: bool | None = None, sampler: Any = None,
        batch_sampler: Any = None, num_workers: int = 0, collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False, drop_last: bool = False, timeout: float = 0, worker_init_fn: Any = None,
        multiprocessing_context: Any = None, generator: torch.Generator | None = None, *,
        prefetch_factor: int | None = None, persistent_workers: bool = False, pin_memory_device: str = "",
    ) -> None:  # fmt: skip
        if isinstance(dataset, IterableDataset):
            if shuffle or sampler is not None or batch_sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified shuffle, sampler and batch_sampler"
                )
        elif sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"
                )
            batch_size, drop_last = None, False
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        self.dataset, self.batch_size, self.drop_last, self.generator = dataset, batch_size, drop_last, generator
        self.num_workers, self.timeout, self.worker_init_fn = num_workers, timeout, worker_init_fn
        self.pin_memory, self.prefetch_factor, self.persistent_workers = pin_memory, prefetch_factor, persistent_workers
        self.multiprocessing_context = multiprocessing_context
        if not isinstance(dataset, IterableDataset) and sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not isinstance(dataset, IterableDataset):
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self._auto_collation = batch_sampler is not None or (isinstance(dataset, IterableDataset) and batch_size)
        self.collate_fn = (
            collate_fn if collate_fn is not None else default_collate if self._auto_collation else _convert
        )

    def __len__(self) -> int:
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)  # type: ignore[arg-type]
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def __iter__(self) -> Iterator[Any]:
        if self.num_workers > 0:
            return iter(self._torch_loader())
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)  # torch's base seed: the same draws
        if isinstance(self.dataset, IterableDataset):
            return self._iterable()
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        dataset, collate = self.dataset, self.collate_fn
        fast = isinstance(dataset, TensorDataset) and collate is default_collate
        for indices in self.batch_sampler if self.batch_sampler is not None else self.sampler:
            if fast:  # one gather per tensor instead of a stack of single rows: the same values
                index = torch.as_tensor(indices, dtype=torch.long)
                yield tuple(wrap(t.data[index]) if isinstance(t, Tensor) else t[index] for t in dataset.tensors)
            elif self._auto_collation:
                yield collate([dataset[i] for i in indices])
            else:
                yield collate(dataset[indices])

    def _iterable(self) -> Iterator[Any]:
        if not self.batch_size:
            yield from (self.collate_fn(sample) for sample in self.dataset)
            return
        batch: list[Any] = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def _torch_loader(self) -> Iterable[Any]:
        from torch.utils import data as torch_data

        if self.batch_sampler is not None:
            batching: dict[str, Any] = {"batch_sampler": self.batch_sampler}
        else:
            batching = {"batch_size": self.batch_size, "sampler": self.sampler, "drop_last": self.drop_last}
        return torch_data.DataLoader(
            self.dataset, **batching, num_workers=self.num_workers, collate_fn=self.collate_fn,
            pin_memory=self.pin_memory, timeout=self.timeout, worker_init_fn=self.worker_init_fn,
            multiprocessing_context=self.multiprocessing_context, generator=self.generator,
            prefetch_factor=self.prefetch_factor, persistent_workers=self.persistent_workers,
        )  # fmt: skip


def _convert(sample: Any) -> Any:
    """What a loader without batching yields: the sample as it is."""
    return sample
