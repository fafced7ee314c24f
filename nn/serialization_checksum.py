"""A checkpoint's tensor bytes and their checksums: CRC-32 since format version 3, SHA-256 in version 2.

A checksum here guards against a file damaged on disk or in transit (a flipped bit, a zeroed or
torn page, a truncated copy), not against someone who rewrites the file: the metadata is
hashed with SHA-256, the tensors with the CRC-32 of zlib, which catches every burst of up to 32
bits and all but 1 in 2^32 other corruptions. Where the ``zlib-ng`` package is installed (the
``io`` extra) its vectorised CRC-32 computes the same value three to four times faster than the
standard library's (about 9 GB/s against 2-3 GB/s on one core, docs/performance.md), which is
what lets a save or load keep pace with copying the bytes.

Bytes are hashed in chunks of `CHUNK`, each while it is still in the CPU cache from being read
or just before it is written, so the check adds no pass over memory of its own. Tensors are
seen as bytes through zero-copy views (`tensor_bytes`), read and written with plain positional
file reads and writes (`read_at`), in pieces spread over torch's threads
(`nn.serialization_parallel`); a tensor's CRC-32 is put together from its pieces' CRCs
(`crc32_combine`, which needs zlib-ng: with the standard zlib a tensor is one piece).
"""

from __future__ import annotations

import hashlib
import os
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from io import FileIO
from typing import Any, Protocol, cast

import torch

from .serialization_parallel import POSITIONAL, run_all, runs

__all__ = [
    "ALGORITHMS", "WRITTEN", "CHUNK", "CHECK_CHUNK", "Hasher", "chunks", "file_digests", "read_at", "tensor_bytes",
    "crc32", "crc32_combine",
]  # fmt: skip

CHUNK = 1 << 20  # fits the L2 cache: hashed and then copied (or copied and then hashed) while hot
# a load's check reads into a buffer of this size and hashes it: a quarter of the L2 cache, which the
# kernel's copy into the buffer leaves hot (4 MB load: 1.43x safetensors' time against 1.57x with 1 MB)
CHECK_CHUNK = 256 << 10
_MAX_VIEWS = 1024  # buffers one preadv takes (Linux's UIO_MAXIOV)

crc32_combine: Callable[[int, int, int], int] | None
try:  # the same CRC-32 as zlib's, vectorised (PCLMUL/AVX); the standard zlib where it is missing
    from zlib_ng.zlib_ng import crc32, crc32_combine
except ImportError:  # pragma: no cover - installed with the io extra
    crc32, crc32_combine = zlib.crc32, None


class Hasher(Protocol):
    """What a checksum object does (``hashlib``'s interface)."""

    def update(self, data: Any, /) -> None:
        """Add the next bytes."""

    def hexdigest(self) -> str:
        """The checksum of everything added, in hex."""


class _Crc32:
    """CRC-32 with ``hashlib``'s interface: `update` with the next bytes, `hexdigest` at the end."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Any, /) -> None:
        self.value = crc32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


# the metadata key of each algorithm -> (its hex digest's length, a new hasher, its name in messages)
ALGORITHMS: dict[str, tuple[int, Callable[[], Hasher], str]] = {
    "crc32": (8, _Crc32, "CRC-32"),
    "sha256": (64, hashlib.sha256, "SHA-256"),
}
WRITTEN = "crc32"  # what `nn.save` records (format version 3)


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """A tensor's bytes as safetensors stores them (contiguous, in memory order), without a copy
    when ``t`` already is a contiguous CPU tensor (else one temporary copy of this tensor);
    writable, and writes reach ``t`` itself where no copy was made."""
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.numel() == 0:
        return memoryview(bytearray())
    flat = t.contiguous().reshape(-1).view(torch.uint8)  # any dtype as its bytes, shared memory
    array: Any = flat.numpy()  # shares the tensor's memory and keeps it alive
    return memoryview(array)


def chunks(data: memoryview) -> Iterator[memoryview]:
    """``data`` (a flat byte view) in slices of at most `CHUNK` bytes, no copy."""
    for start in range(0, data.nbytes, CHUNK):
        yield data[start : start + CHUNK]


def read_at(f: FileIO, position: int, into: memoryview | Sequence[memoryview]) -> int:
    """Read from the unbuffered file ``f`` at ``position`` into the byte view ``into`` (or into each
    of a list of views in turn, from consecutive bytes of the file: one system call for many small
    tensors); the number of bytes read, short only where the file ends early. Positional (the
    file's offset is not used, so threads may share ``f``) where the platform has ``os.preadv``."""
    views = [v for v in ([into] if isinstance(into, memoryview) else into) if v.nbytes]
    done = 0
    while views:
        if POSITIONAL:  # one read stops at 2 GB on Linux, and takes at most _MAX_VIEWS views
            got = os.preadv(f.fileno(), views[:_MAX_VIEWS], position + done)
        else:  # pragma: no cover - Windows: one thread, the file's offset
            f.seek(position + done)
            got = f.readinto(views[0]) or 0
        if not got:
            break
        done += got
        full = 0
        while full < len(views) and got >= views[full].nbytes:
            got -= views[full].nbytes
            full += 1
        views = views[full:]
        if got:
            views[0] = views[0][got:]
    return done


_buffers = threading.local()


def file_digests(f: FileIO, algorithm: str, ranges: Mapping[str, tuple[int, int]], threads: int = 1) -> dict[str, str]:
    """The hex digest of each ``[begin, end)`` byte range of the unbuffered file ``f``, on up to
    ``threads`` threads.

    The ranges are read as one stream in file order, `CHECK_CHUNK` bytes at a time into the
    thread's reused buffer, and each read is hashed, range by range, while it is in the cache: one
    read covers many small tensors, no page of the file is mapped (a mapping's page faults cost
    more than the reads here) and nothing the size of a tensor is allocated. With CRC-32 and
    zlib-ng the stream is cut into `SEGMENT`-sized pieces for the threads and each range's CRC is
    put together from its pieces'. A range that ends early (a file truncated since it was opened)
    gets an empty digest, which matches no checksum.
    """
    split = algorithm == "crc32" and crc32_combine is not None  # else a range is never cut
    work = runs(((begin, end, name) for name, (begin, end) in ranges.items()), split)

    def digest(slices: list[tuple[int, int, str]]) -> list[Hasher | None]:
        buffer = getattr(_buffers, "buffer", None)
        if buffer is None:  # one per thread, kept: the helper threads and their buffers live on
            buffer = _buffers.buffer = memoryview(bytearray(CHECK_CHUNK))
        hashers: list[Hasher | None] = [ALGORITHMS[algorithm][1]() for _ in slices]
        start, stop, i = slices[0][0], slices[-1][1], 0
        for at in range(start, stop, CHECK_CHUNK):
            want = min(CHECK_CHUNK, stop - at)
            got = read_at(f, at, buffer[:want])
            read_to = at + got
            while i < len(slices):
                begin, end, _ = slices[i]
                if min(end, read_to) > max(begin, at):
                    hashers[i].update(buffer[max(begin, at) - at : min(end, read_to) - at])  # type: ignore[union-attr]
                if end > read_to:
                    break
                i += 1
            if got < want:  # the file ended: the slices not read whole get no digest
                return hashers[:i] + [None] * (len(slices) - i)
        return hashers

    done = run_all([partial(digest, piece) for piece in work], threads)
    parts: dict[str, list[tuple[Hasher | None, int]]] = {name: [] for name in ranges}
    for slices, hashers in zip(work, done):
        for (begin, end, name), hasher in zip(slices, hashers):
            parts[name].append((hasher, end - begin))
    return {name: _joined(found) for name, found in parts.items()}


def _joined(found: list[tuple[Hasher | None, int]]) -> str:
    """One range's digest from its pieces' (in order; a piece cut short is None: the empty digest)."""
    if any(h is None for h, _ in found):
        return ""
    if len(found) == 1:
        return found[0][0].hexdigest()  # type: ignore[union-attr]  # None ruled out above
    assert crc32_combine is not None  # only CRC-32 ranges are split, and only with zlib-ng
    value = 0  # the CRC-32 of no bytes
    for hasher, size in found:
        value = crc32_combine(value, cast(_Crc32, hasher).value, size)
    return f"{value:08x}"
