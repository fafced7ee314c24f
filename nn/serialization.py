"""Checkpoints in the safetensors format (no pickle), written atomically, checked on load.

The file holds the module's parameters under their dotted names (``0.weight``) and, with an
optimizer, its state tensors under ``optimizer.state.<index>.<name>``; the optimizer's class,
hyperparameters and non-tensor state go as JSON into the header's metadata, with a CRC-32 of
every tensor's bytes and the SHA-256 of the metadata itself. Each tensor is hashed and written straight from
its own memory (`nn.serialization_write`): no copy of the model is made. A save writes a temporary file in the same
folder (locked while it is written), fsyncs it and renames it over the target, so a crash
mid-save leaves the previous checkpoint intact; the next save removes such a crash's leftover
(`nn.serialization_atomic`).
A load checks the whole file, and the file against the model and optimizer, before it changes
anything (see `nn.serialization_format` and `nn.serialization_optim`), then reads each parameter
straight from the file into the parameter's memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from .module import Module
from .serialization_atomic import write_atomically
from .serialization_checksum import ALGORITHMS
from .serialization_format import FORMAT, VERSION, CheckpointFile, SerializationError, read_checkpoint
from .serialization_optim import OPT_PREFIX, optimizer_state, snapshot
from .serialization_write import write_checkpoint

__all__ = ["save", "load", "inspect", "SerializationError", "CheckpointInfo"]


def _contents(module: Module, optimizer: Any = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors to write (the live ones, not copies) and the metadata that describes them."""
    tensors = dict(module.state_dict())
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "module": type(module).__name__}
    if optimizer is not None:
        sd = optimizer.state_dict()
        extra: dict[str, dict[str, Any]] = {}
        for idx, values in sd["state"].items():
            for name, v in values.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"{OPT_PREFIX}{idx}.{name}"] = v
                else:
                    extra.setdefault(str(idx), {})[name] = v
        meta["optimizer"] = {"class": type(optimizer).__name__, "param_groups": sd["param_groups"], "extra": extra}
    return tensors, meta


def save(module: Module, path: str | os.PathLike, optimizer: Any = None) -> None:
    """Write ``module``'s parameters (and ``optimizer``'s state) to ``path`` atomically, with checksums."""
    if not isinstance(module, Module):
        raise TypeError(f"save: module must be an nn.Module, got {type(module).__name__}")
    if optimizer is not None and not callable(getattr(optimizer, "state_dict", None)):
        raise TypeError(f"save: optimizer must be an nn optimizer, got {type(optimizer).__name__}")
    tensors, meta = _contents(module, optimizer)
    write_atomically(os.fspath(path), lambda f: write_checkpoint(f, tensors, meta))


def _module_tensors(ckpt: CheckpointFile, module: Module, strict: bool) -> list[str]:
    """The names of the file's parameters that go into ``module``, after checking names, shapes and dtypes."""
    path = ckpt.path
    names = [k for k in ckpt.entries if not k.startswith(OPT_PREFIX)]
    own = module.state_dict(keep_vars=True)
    missing = [k for k in own if k not in ckpt.entries]
    unexpected = sorted(k for k in names if k not in own)
    wrong = [
        f"{k}: file {ckpt.entries[k].shape}, model {tuple(p.shape)}"
        for k, p in own.items()
        if k in ckpt.entries and ckpt.entries[k].shape != tuple(p.shape)
    ]
    kinds = [
        f"{k} ({ckpt.entries[k].dtype} into {p.dtype})"
        for k, p in own.items()
        if k in ckpt.entries and p.data.is_floating_point() and not ckpt.entries[k].dtype.is_floating_point
    ]
    problems = []
    if missing and strict:
        problems.append(f"missing from the file: {', '.join(missing)}")
    if unexpected and strict:
        problems.append(f"unexpected in the file: {', '.join(unexpected)}")
    if wrong:
        problems.append(f"shape mismatch for {'; '.join(wrong)}")
    if kinds and strict:
        problems.append(f"integer or bool tensors for float parameters: {', '.join(kinds)} (strict=False converts)")
    if problems:
        raise SerializationError(
            f"{path}: checkpoint does not match the {type(module).__name__}: " + "; ".join(problems)
        )
    return [k for k in own if k in ckpt.entries]


def load(module: Module, path: str | os.PathLike, optimizer: Any = None, strict: bool = True) -> None:
    """Restore ``module`` (and ``optimizer``) from a checkpoint written by `save`.

    Everything is checked before anything changes: a truncated or corrupt file, a tensor whose
    bytes differ from their checksum at save time, metadata that does not follow the schema,
    missing or unexpected parameter names, wrong shapes, integer or bool tensors for float
    parameters, or optimizer state that does not fit ``optimizer`` raise `SerializationError`
    saying which key. With ``strict=False`` (torch's meaning) missing and unexpected names are
    skipped and integer tensors are converted. A plain safetensors file (no checksums) loads
    with the check skipped; `inspect` says so. The file is held open from the check to the copy,
    so a save that replaces it meanwhile does not matter; only another program cutting the same
    file short in between can stop the copy half-way (`SerializationError`, truncated).
    """
    if not isinstance(module, Module):
        raise TypeError(f"load: module must be an nn.Module, got {type(module).__name__}")
    if not isinstance(strict, bool):
        raise TypeError(f"load: strict must be True or False, got {type(strict).__name__}")
    with read_checkpoint(path) as ckpt:
        bad = ckpt.bad_checksums()
        if bad:
            raise SerializationError(
                f"{ckpt.path}: corrupt checkpoint: the bytes of {', '.join(repr(b) for b in bad)} changed since "
                f"they were saved ({ALGORITHMS[ckpt.algorithm][2]} mismatch)"
            )
        params = _module_tensors(ckpt, module, strict)
        opt_state = optimizer_state(ckpt, optimizer) if optimizer is not None else None
        own = module.state_dict(keep_vars=True)
        if opt_state is not None:
            before = snapshot(optimizer)
            try:
                optimizer.load_state_dict(opt_state)
            except BaseException:
                optimizer.load_state_dict(before)
                raise
        with torch.no_grad():  # last, after every check: same shapes; read straight into the parameters
            ckpt.read_all({k: own[k].data for k in params})


@dataclass
class CheckpointInfo:
    """What `inspect` found: tensors (name -> (shape, dtype)), optimizer and checksum status.

    ``checksums`` is ``"verified"``, ``"absent"`` (a file not written by `nn.save`, or by an
    older version: nothing to check) or ``"mismatch: name, ..."``.
    """

    path: str
    tensors: dict[str, tuple[tuple[int, ...], torch.dtype]]
    module: str | None
    optimizer: dict[str, Any] | None
    checksums: str

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.module or 'plain safetensors'}, checksums {self.checksums}"]
        width = max((len(n) for n in self.tensors), default=4)
        for name, (shape, dtype) in self.tensors.items():
            lines.append(f"  {name:<{width}}  {str(dtype).replace('torch.', ''):<8} {list(shape)}")
        if self.optimizer:
            groups = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.get("param_groups", [])]
            lines.append(f"  optimizer {self.optimizer.get('class')}: {groups}")
        return "\n".join(lines)


def inspect(path: str | os.PathLike) -> CheckpointInfo:
    """List a checkpoint's tensors (names, shapes, dtypes), its optimizer and its checksum status,
    without loading it into a model. A corrupt file raises `SerializationError`, as `nn.load` would."""
    with read_checkpoint(path) as ckpt:
        bad = ckpt.bad_checksums()
    meta = ckpt.meta or {}
    status = "absent"
    if ckpt.checksums:
        status = f"mismatch: {', '.join(bad)}" if bad else "verified"
    optimizer = meta.get("optimizer")
    return CheckpointInfo(
        path=ckpt.path,
        tensors={n: (e.shape, e.dtype) for n, e in ckpt.entries.items()},
        module=meta.get("module") if isinstance(meta.get("module"), str) else None,
        optimizer=optimizer if isinstance(optimizer, dict) else None,
        checksums=status,
    )
