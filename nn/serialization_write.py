"""Writing a checkpoint in one streaming pass: each tensor's bytes are hashed and written from a
zero-copy view of the tensor itself, so a save runs at disk speed and holds no second copy.

The safetensors header comes first in the file but carries every tensor's checksum, which is
known only once the tensor was read. Every digest has the same width, so the header's length is
known before any hash is: the data section is written after a header-sized gap while it is
hashed (each tensor on a checksum thread while the file takes the bytes), then the finished
header goes into the gap.
"""

from __future__ import annotations

import hashlib
import json
import struct
from concurrent.futures import Future
from typing import Any, BinaryIO

import torch

from .serialization_checksum import ALGORITHMS, WRITTEN, digest, hashing_threads
from .serialization_format import DTYPE_NAMES, META_KEY, META_SHA_KEY

__all__ = ["tensor_bytes", "write_checkpoint"]

_PLACEHOLDER = "0" * ALGORITHMS[WRITTEN][0]  # every digest has this width


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """A tensor's bytes as safetensors stores them (contiguous, in memory order), without a copy
    when ``t`` already is a contiguous CPU tensor (else one temporary copy of this tensor)."""
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.numel() == 0:
        return memoryview(b"")
    flat = t.contiguous().reshape(-1).view(torch.uint8)  # any dtype as its bytes, shared memory
    array: Any = flat.numpy()  # shares the tensor's memory and keeps it alive
    return memoryview(array)


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


def write_checkpoint(f: BinaryIO, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and the JSON-able ``meta`` (given a ``tensors`` table of dtype, shape and
    checksum per tensor) to the open file ``f`` as a safetensors file, hashing as it writes.

    The data section is laid out as safetensors lays it out: widest dtype first, then by name."""
    tensors = dict(sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0])))
    size = len(_header(tensors, meta, dict.fromkeys(tensors, _PLACEHOLDER)))
    f.seek(size)
    pending: dict[str, Future[str] | str] = {}
    with hashing_threads(t.numel() * t.element_size() for t in tensors.values()) as pool:
        for name, t in tensors.items():
            view = tensor_bytes(t)
            done = digest(WRITTEN, view) if pool is None else pool.submit(digest, WRITTEN, view)
            f.write(view)  # while a checksum thread hashes the same bytes
            if isinstance(done, Future) and (t.device.type != "cpu" or not t.is_contiguous()):
                done = done.result()  # a GPU or strided tensor's temporary copy goes before the next
            pending[name] = done
            del view
        digests = {name: d if isinstance(d, str) else d.result() for name, d in pending.items()}
    header = _header(tensors, meta, digests)
    if len(header) != size:  # pragma: no cover - digests are fixed-width; this guards the layout
        raise AssertionError("checkpoint header changed length between its two renderings")
    f.seek(0)
    f.write(header)
