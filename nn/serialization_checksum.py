"""The checksums of a checkpoint's tensors: CRC-32 since format version 3, SHA-256 in version 2.

A checksum here guards against a file damaged on disk or in transit (a flipped bit, a zeroed or
torn page, a truncated copy), not against someone who rewrites the file: the metadata is
hashed with SHA-256, the tensors with zlib's CRC-32, which catches every burst of up to 32 bits
and all but 1 in 2^32 other corruptions, at two to five times SHA-256's speed (measured in
docs/performance.md). Both release the GIL on large buffers, so the tensors of a file are
hashed on a few threads at once: on a machine with spare cores the check keeps pace with reading
the file, and a save hashes each tensor while the previous one is being written.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

__all__ = ["ALGORITHMS", "WRITTEN", "digest", "digests", "hashing_threads"]


def _crc32(data: memoryview) -> str:
    return f"{zlib.crc32(data):08x}"


def _sha256(data: memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


# the metadata key of each algorithm -> (its hex digest's length, the function, its name in messages)
ALGORITHMS: dict[str, tuple[int, Callable[[memoryview], str], str]] = {
    "crc32": (8, _crc32, "CRC-32"),
    "sha256": (64, _sha256, "SHA-256"),
}
WRITTEN = "crc32"  # what `nn.save` records (format version 3)
_SMALL = 1 << 20  # below a MiB in all, threads cost more than they save


def digest(algorithm: str, data: memoryview) -> str:
    """The hex digest of ``data`` with ``algorithm`` (a key of `ALGORITHMS`)."""
    return ALGORITHMS[algorithm][1](data)


def _threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores))


@contextmanager
def hashing_threads(sizes: Iterable[int]) -> Iterator[ThreadPoolExecutor | None]:
    """A pool of up to 4 threads (one per core) to hash buffers of these sizes, or None for one
    buffer, for less than a MiB in all, or on one core."""
    sizes = list(sizes)
    if len(sizes) < 2 or sum(sizes) < _SMALL or _threads() == 1:
        yield None
        return
    with ThreadPoolExecutor(_threads(), thread_name_prefix="tapegrad-checksum") as pool:
        yield pool


def digests(algorithm: str, views: Mapping[str, memoryview]) -> dict[str, str]:
    """Each view's hex digest, hashed on several threads when there is enough to hash."""
    with hashing_threads(v.nbytes for v in views.values()) as pool:
        if pool is None:
            return {name: digest(algorithm, view) for name, view in views.items()}
        futures: dict[str, Future[str]] = {name: pool.submit(digest, algorithm, v) for name, v in views.items()}
        return {name: f.result() for name, f in futures.items()}
