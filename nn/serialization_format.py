"""Reading a safetensors checkpoint without trusting it: header, metadata schema and checksums.

`read_checkpoint` parses the file itself (8-byte header length, JSON header, tensor bytes) and
checks every field before any tensor is built: each failure is a `SerializationError` naming the
key. A checkpoint written by `nn.save` carries, in the header's metadata, a CRC-32 of every
tensor's bytes (a SHA-256 in files of format version 2, still read) and the SHA-256 of the
metadata itself; a plain safetensors file from elsewhere has none and loads with the check
skipped (`inspect` says which).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass, field
from functools import partial
from io import FileIO
from typing import Any

import torch

from .serialization_checksum import ALGORITHMS, file_digests, read_at, tensor_bytes
from .serialization_parallel import run_all, runs, threads_for

__all__ = [
    "SerializationError", "TensorEntry", "CheckpointFile", "read_checkpoint",
    "DTYPE_NAMES", "FORMAT", "VERSION", "META_KEY", "META_SHA_KEY",
]  # fmt: skip

FORMAT = "tapegrad-checkpoint"
# 3: a CRC-32 of every tensor, the SHA-256 of the metadata; 2 (still read): SHA-256 of every
# tensor; 1 (still read): no checksums
VERSION = 3
_TENSOR_CHECKSUM = {2: "sha256", 3: "crc32"}  # format version -> the per-tensor checksum it records
META_KEY = "tapegrad"
META_SHA_KEY = "tapegrad.sha256"
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header

_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}  # fmt: skip
for _name, _attr in (("U16", "uint16"), ("U32", "uint32"), ("U64", "uint64"), ("F8_E4M3", "float8_e4m3fn"),
                     ("F8_E5M2", "float8_e5m2")):  # fmt: skip
    if hasattr(torch, _attr):
        _DTYPES[_name] = getattr(torch, _attr)
DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


class SerializationError(ValueError):
    """A weight file (`nn.save`'s checkpoint) that cannot be loaded: truncated, corrupt, or not
    matching the model/optimizer. (`tg.CheckpointError` is another thing: a `tg.checkpoint` block
    whose recomputation differed.)"""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the header: its name, dtype, shape and byte range in the data section."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass
class CheckpointFile:
    """A parsed, structurally valid file, held open (close it, or use it in a ``with`` block):
    its tensor entries and metadata (``None`` if plain). Tensors are read with plain reads, not
    mapped: a mapping's page faults cost more than the reads (docs/performance.md)."""

    path: str
    file: FileIO
    data_start: int
    entries: dict[str, TensorEntry]
    meta: dict[str, Any] | None
    checksums: dict[str, str] = field(default_factory=dict)
    algorithm: str = "crc32"  # the checksums' (a key of serialization_checksum.ALGORITHMS)

    def __enter__(self) -> CheckpointFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self.file.close()

    def read_into(self, name: str, out: torch.Tensor) -> None:
        """Copy the tensor ``name`` into ``out`` (its shape): read straight into ``out``'s memory
        when it is a contiguous CPU tensor of the file's dtype, else through a temporary."""
        self.read_all({name: out})

    def read_all(self, outs: dict[str, torch.Tensor]) -> None:
        """`read_into` for each name and tensor of ``outs``. The direct reads go in file order, in
        batches of at most `SEGMENT` bytes (one system call for many small tensors; a large tensor
        in several) spread over torch's threads (`nn.serialization_parallel`)."""
        direct = {n: t for n, t in outs.items() if t.device.type == "cpu" and t.dtype == self.entries[n].dtype
                  and t.is_contiguous()}  # fmt: skip
        for name, out in outs.items():
            if name not in direct:
                out.copy_(self.tensor(name))
        begins = {n: self.data_start + self.entries[n].begin for n in direct}
        views = {n: tensor_bytes(t) for n, t in direct.items()}
        batches = runs((begins[n], self.data_start + self.entries[n].end, n) for n in direct)
        reads = [
            partial(read_at, self.file, b[0][0], [views[n][s - begins[n] : e - begins[n]] for s, e, n in b])
            for b in batches
        ]
        got = run_all(reads, threads_for(sum(b[-1][1] - b[0][0] for b in batches)))  # a run is contiguous
        for batch, n in zip(batches, got):
            short = [name for _, end, name in batch if end > batch[0][0] + n]
            if short:
                raise _fail(
                    self.path, f"truncated checkpoint: the file ended inside tensor {short[0]!r} while it was read"
                )

    def tensor(self, name: str) -> torch.Tensor:
        """The tensor ``name``, read into new memory."""
        e = self.entries[name]
        out = torch.empty(e.shape, dtype=e.dtype)
        self.read_into(name, out)
        return out

    def bad_checksums(self) -> list[str]:
        """Names of the tensors whose bytes differ from the checksum recorded when they were saved."""
        ranges = {n: (self.data_start + self.entries[n].begin, self.data_start + self.entries[n].end)
                  for n in self.checksums}  # fmt: skip
        size = sum(end - begin for begin, end in ranges.values())
        found = file_digests(self.file, self.algorithm, ranges, threads_for(size))
        return [name for name, expected in self.checksums.items() if found[name] != expected]


def _fail(path: str, text: str) -> SerializationError:
    return SerializationError(f"{path}: {text}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _entry(path: str, name: str, value: Any) -> TensorEntry:
    where = f"corrupt checkpoint: tensor {name!r}"
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise _fail(path, f"{where}: expected the fields dtype, shape, data_offsets, got {value!r:.80}")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise _fail(path, f"{where}: unknown dtype {dtype!r:.40}")
    if not isinstance(shape, list) or len(shape) > 64 or not all(_is_int(d) and d >= 0 for d in shape):
        raise _fail(path, f"{where}: shape must be a list of sizes >= 0, got {shape!r:.80}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
        raise _fail(path, f"{where}: data_offsets must be two integers >= 0, got {offsets!r:.80}")
    begin, end = offsets
    size = math.prod(shape) * _DTYPES[dtype].itemsize
    if end - begin != size:
        raise _fail(path, f"{where}: data_offsets {offsets} hold {end - begin} bytes, {dtype} {shape} needs {size}")
    return TensorEntry(name, _DTYPES[dtype], tuple(shape), begin, end)


def _header(path: str, f: FileIO, size: int) -> tuple[dict[str, Any], int]:
    if size < 8:
        raise _fail(path, f"truncated checkpoint ({size} bytes, not even a header length)")
    (header_len,) = struct.unpack("<Q", f.read(8))
    if header_len > _MAX_HEADER:
        raise _fail(path, f"corrupt checkpoint: a header of {header_len} bytes (more than safetensors allows)")
    if 8 + header_len > size:
        raise _fail(path, f"truncated checkpoint: header of {header_len} bytes but file has {size} bytes")
    text = bytearray(header_len)
    if read_at(f, 8, memoryview(text)) != header_len:
        raise _fail(path, "truncated checkpoint: the file ended inside the header while it was read")
    try:
        header = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _fail(path, f"corrupt checkpoint: unreadable safetensors header ({type(err).__name__})") from None
    if not isinstance(header, dict):
        raise _fail(path, f"corrupt checkpoint: the header is a JSON {type(header).__name__}, not an object")
    return header, 8 + header_len


def _metadata(path: str, header: dict[str, Any]) -> dict[str, str]:
    meta = header.get("__metadata__", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise _fail(path, "corrupt checkpoint: __metadata__ must map strings to strings")
    return meta


def _check_layout(path: str, entries: dict[str, TensorEntry], data_size: int) -> None:
    """The tensors tile the data section exactly, in order, as safetensors writes them."""
    position = 0
    for e in sorted(entries.values(), key=lambda e: (e.begin, e.end)):
        if e.begin != position:
            what = "overlaps another tensor" if e.begin < position else "leaves a gap before it"
            raise _fail(path, f"corrupt checkpoint: tensor {e.name!r} {what} (data_offsets [{e.begin}, {e.end}])")
        position = e.end
    if position > data_size:
        raise _fail(path, f"truncated checkpoint: the tensors need {position} bytes of data, the file has {data_size}")
    if position < data_size:
        raise _fail(path, f"corrupt checkpoint: {data_size - position} bytes after the last tensor")


def _tapegrad_meta(path: str, meta: dict[str, str], entries: dict[str, TensorEntry]) -> tuple[dict | None, dict]:
    """The tapegrad metadata (None for a plain safetensors file) and the tensor checksums it records
    (with the version's algorithm, as the key ``algorithm`` of the returned checksums' record)."""
    text, digest = meta.get(META_KEY), meta.get(META_SHA_KEY)
    if text is None:
        if digest is not None:
            raise _fail(path, f"corrupt checkpoint: metadata {META_SHA_KEY!r} without {META_KEY!r}")
        return None, {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise _fail(path, f"corrupt checkpoint: metadata {META_KEY!r} is not valid JSON") from None
    if not isinstance(data, dict):
        raise _fail(path, f"corrupt checkpoint: metadata {META_KEY!r} must be a JSON object")
    if digest is not None and digest != hashlib.sha256(text.encode("utf-8")).hexdigest():
        raise _fail(path, f"corrupt checkpoint: metadata {META_KEY!r} does not match its checksum {META_SHA_KEY!r}")
    if data.get("format") != FORMAT or data.get("version") not in (1, *_TENSOR_CHECKSUM):
        raise _fail(path, f"unsupported checkpoint format {data.get('format')!r:.40} {data.get('version')!r:.20}")
    if data["version"] == 1:
        return data, {}
    if digest is None:
        raise _fail(path, f"corrupt checkpoint: metadata {META_KEY!r} without its checksum {META_SHA_KEY!r}")
    table = data.get("tensors")
    if not isinstance(table, dict) or set(table) != set(entries):
        raise _fail(path, "corrupt checkpoint: metadata 'tensors' does not list the file's tensors")
    checksums = {}
    for name, e in entries.items():
        rec = table[name]
        if not isinstance(rec, dict) or rec.get("dtype") != DTYPE_NAMES[e.dtype] or rec.get("shape") != list(e.shape):
            raise _fail(path, f"corrupt checkpoint: tensor {name!r}: dtype or shape differs from the metadata's")
        algorithm = _TENSOR_CHECKSUM[data["version"]]
        value = rec.get(algorithm)
        if not isinstance(value, str) or len(value) != ALGORITHMS[algorithm][0]:
            raise _fail(path, f"corrupt checkpoint: tensor {name!r}: no valid {algorithm} in the metadata")
        checksums[name] = value
    return data, checksums


def read_checkpoint(path: str | os.PathLike) -> CheckpointFile:
    """Parse and check a checkpoint file, held open for reading its tensors (close it, or use it in a
    ``with`` block); raises `SerializationError` naming what is wrong."""
    path = os.fspath(path)
    f = open(path, "rb", buffering=0)
    try:
        size = os.fstat(f.fileno()).st_size
        header, data_start = _header(path, f, size)
        meta = _metadata(path, header)
        entries = {}
        for name, value in header.items():
            if name != "__metadata__":
                entries[name] = _entry(path, name, value)
        _check_layout(path, entries, size - data_start)
        data, checksums = _tapegrad_meta(path, meta, entries)
    except BaseException:
        f.close()
        raise
    algorithm = _TENSOR_CHECKSUM.get(data["version"], "crc32") if data else "crc32"
    return CheckpointFile(path, f, data_start, entries, data, checksums, algorithm)
