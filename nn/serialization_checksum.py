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
seen as bytes through zero-copy views (`tensor_bytes`), read and written with plain file reads
and writes (`read_at`).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator, Mapping
from io import FileIO
from typing import Any, Protocol

import torch

__all__ = ["ALGORITHMS", "WRITTEN", "CHUNK", "Hasher", "chunks", "file_digests", "read_at", "tensor_bytes", "crc32"]

CHUNK = 1 << 20  # fits the L2 cache: hashed and then copied (or copied and then hashed) while hot

try:  # the same CRC-32 as zlib's, vectorised (PCLMUL/AVX); the standard zlib where it is missing
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - installed with the io extra
    crc32 = zlib.crc32


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
    bytes read, short only where the file ends early."""
    f.seek(position)
    done = 0
    while done < into.nbytes:
        got = f.readinto(into[done:])  # one read stops at 2 GB on Linux
        if not got:
            break
        done += got
    return done


def file_digests(f: FileIO, algorithm: str, ranges: Mapping[str, tuple[int, int]]) -> dict[str, str]:
    """The hex digest of each ``[begin, end)`` byte range of the unbuffered file ``f``.

    Read into one reused buffer of `CHUNK` bytes and hashed while it is in the cache: no page of
    the file is mapped (mapping 100 MB costs tens of thousands of page faults, more than reading
    it) and nothing the size of a tensor is allocated. A range that ends early (a file truncated
    since it was opened) gets an empty digest, which matches no checksum.
    """
    buffer = memoryview(bytearray(CHUNK))
    found = {}
    for name, (begin, end) in ranges.items():
        hasher = ALGORITHMS[algorithm][1]()
        position = begin
        while position < end:
            want = min(CHUNK, end - position)
            got = read_at(f, position, buffer[:want])
            hasher.update(buffer[:got])
            position += got
            if got < want:
                break
        found[name] = hasher.hexdigest() if position == end else ""
    return found
