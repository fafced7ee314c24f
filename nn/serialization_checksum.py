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
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from io import FileIO
from typing import Any, Protocol, cast

import torch

from .serialization_parallel import POSITIONAL, SEGMENT, pieces, run_all

__all__ = [
    "ALGORITHMS", "WRITTEN", "CHUNK", "CHECK_CHUNK", "Hasher", "chunks", "file_digests", "read_at", "tensor_bytes",
    "crc32", "crc32_combine",
]  # fmt: skip

CHUNK = 1 << 20  # fits the L2 cache: hashed and then copied (or copied and then hashed) while hot
# a load's check reads into a buffer of this size and hashes it: a quarter of the L2 cache, which the
# kernel's copy into the buffer leaves hot (4 MB load: 1.43x safetensors' time against 1.57x with 1 MB)
CHECK_CHUNK = 256 << 10

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


def read_at(f: FileIO, position: int, into: memoryview) -> int:
    """Read from the unbuffered file ``f`` at ``position`` into the byte view ``into``; the number of
    bytes read, short only where the file ends early. Positional (the file's offset is not used, so
    threads may share ``f``) where the platform has ``os.preadv``."""
    done = 0
    while done < into.nbytes:
        if POSITIONAL:
            got = os.preadv(f.fileno(), [into[done:]], position + done)  # one read stops at 2 GB on Linux
        else:  # pragma: no cover - Windows: one thread, the file's offset
            f.seek(position + done)
            got = f.readinto(into[done:]) or 0
        if not got:
            break
        done += got
    return done


_buffers = threading.local()


def file_digests(f: FileIO, algorithm: str, ranges: Mapping[str, tuple[int, int]], threads: int = 1) -> dict[str, str]:
    """The hex digest of each ``[begin, end)`` byte range of the unbuffered file ``f``, on up to
    ``threads`` threads.

    Each piece is read into its thread's reused buffer of `CHECK_CHUNK` bytes and hashed while it is in
    the cache: no page of the file is mapped (a mapping's page faults cost more than the reads here)
    and nothing the size of a tensor is allocated. A range that ends early (a file truncated since
    it was opened) gets an empty digest, which matches no checksum.
    """
    split = algorithm == "crc32" and crc32_combine is not None  # else one piece per range
    work = [
        (name, b, e)
        for name, (begin, end) in ranges.items()
        for b, e in pieces(begin, end, SEGMENT if split else max(1, end - begin))
    ]

    def digest(begin: int, end: int) -> Hasher | None:
        buffer = getattr(_buffers, "buffer", None)
        if buffer is None:  # one per thread, kept: the helper threads and their buffers live on
            buffer = _buffers.buffer = memoryview(bytearray(CHECK_CHUNK))
        hasher = ALGORITHMS[algorithm][1]()
        for start in range(begin, end, CHECK_CHUNK):
            want = min(CHECK_CHUNK, end - start)
            got = read_at(f, start, buffer[:want])
            hasher.update(buffer[:got])
            if got < want:
                return None
        return hasher

    done = run_all([partial(digest, b, e) for _, b, e in work], threads)
    parts: dict[str, list[tuple[Hasher | None, int]]] = {}
    for (name, b, e), hasher in zip(work, done):
        parts.setdefault(name, []).append((hasher, e - b))
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
