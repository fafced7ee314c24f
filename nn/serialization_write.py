"""Writing a checkpoint in one streaming pass: each tensor's bytes are hashed and written from a
zero-copy view of the tensor itself, so a save runs at disk speed and holds no second copy.

The safetensors header comes first in the file but carries every tensor's checksum, which is
known only once the tensor was read. Every digest has the same width, so the header's length is
known before any hash is: the data section is written after a header-sized gap while it is
hashed (chunk by chunk: each chunk is hashed and then written while it is in the cache), then
the finished header goes into the gap.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, BinaryIO

import torch

from .serialization_atomic import start_writeback
from .serialization_checksum import ALGORITHMS, CHUNK, WRITTEN, chunks, tensor_bytes
from .serialization_format import DTYPE_NAMES, META_KEY, META_SHA_KEY

__all__ = ["write_checkpoint", "WRITEBACK"]

# bytes written between two writeback requests: a small model's whole file is then mostly on its way
# to disk before the fsync (at 4 MB, every 4 MB left the whole file to the fsync: 1.5x slower)
WRITEBACK = CHUNK

_PLACEHOLDER = "0" * ALGORITHMS[WRITTEN][0]  # every digest has this width


def _header(tensors: dict[str, torch.Tensor], meta: dict[str, Any], digests: dict[str, str]) -> bytes:
    """The safetensors header (length prefix and JSON, padded to 8 bytes) with these digests."""
    meta["tensors"] = {
        name: {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), WRITTEN: digests[name]}
        for name, t in tensors.items()
    }
    text = json.dumps(meta)
    header: dict[str, Any] = {
        "__metadata__": {META_KEY: text, META_SHA_KEY: hashlib.sha256(text.encode("utf-8")).hexdigest()}
    }
    offset = 0
    for name, t in tensors.items():
        size = t.numel() * t.element_size()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    body = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body += b" " * (-(8 + len(body)) % 8)  # safetensors aligns the data section to 8 bytes
    return struct.pack("<Q", len(body)) + body


class _Writer:
    """Writes chunks to the file at its position and has the kernel start putting every
    `WRITEBACK` bytes written on disk at once (`start_writeback`): the closing fsync waits for less."""

    def __init__(self, f: BinaryIO, position: int) -> None:
        self.f, self.position, self.pushed = f, position, position

    def write(self, piece: memoryview) -> None:
        self.f.write(piece)
        self.position += piece.nbytes
        if self.position - self.pushed >= WRITEBACK:
            self.f.flush()
            start_writeback(self.f, self.pushed, self.position)
            self.pushed = self.position

    def tensor(self, t: torch.Tensor) -> str:
        """Write ``t``'s bytes; their checksum. A temporary copy (a strided or GPU tensor's) is gone
        when this returns, before the next tensor's is made."""
        hasher = ALGORITHMS[WRITTEN][1]()
        for piece in chunks(tensor_bytes(t)):
            hasher.update(piece)  # then written while it is still in the cache
            self.write(piece)
        return hasher.hexdigest()


def write_checkpoint(f: BinaryIO, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and the JSON-able ``meta`` (given a ``tensors`` table of dtype, shape and
    checksum per tensor) to the open file ``f`` as a safetensors file, hashing as it writes.

    The data section is laid out as safetensors lays it out: widest dtype first, then by name."""
    tensors = dict(sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0])))
    size = len(_header(tensors, meta, dict.fromkeys(tensors, _PLACEHOLDER)))
    f.seek(size)
    writer = _Writer(f, size)
    digests = {name: writer.tensor(t) for name, t in tensors.items()}
    header = _header(tensors, meta, digests)
    if len(header) != size:  # pragma: no cover - digests are fixed-width; this guards the layout
        raise AssertionError("checkpoint header changed length between its two renderings")
    f.seek(0)
    f.write(header)
