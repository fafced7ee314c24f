"""Checkpoints in the safetensors format (no pickle), written atomically, checked on load.

The file holds the module's parameters under their dotted names (``0.weight``) and, with an
optimizer, its state tensors under ``optimizer.state.<index>.<name>``; the optimizer's class,
hyperparameters and non-tensor state go as JSON into the header's metadata, with a CRC-32 of
every tensor's bytes and the SHA-256 of the metadata itself. Each tensor is hashed and written straight from
its own memory (`nn.serialization_write`): no copy of the model is made. A save writes a temporary file in the same
folder (locked while it is written), fsyncs it and renames it over the target, so a crash
mid-save leaves the previous checkpoint intact; the next save removes such a crash's leftover.
A load checks the whole file, and the file against the model and optimizer, before it changes
anything (see `nn.serialization_format` and `nn.serialization_optim`), then reads each parameter
straight from the file into the parameter's memory.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from typing import Any

import torch

from .module import Module
from .serialization_checksum import ALGORITHMS
from .serialization_format import (
    FORMAT,
    VERSION,
    CheckpointFile,
    CheckpointInfo,
    SerializationError,
    inspect,
    read_checkpoint,
)
from .serialization_optim import OPT_PREFIX, optimizer_state, snapshot
from .serialization_write import write_checkpoint

try:  # POSIX: a temporary file is locked while it is written, so only a dead writer's is stale
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no fcntl on Windows: None, tested before each use

__all__ = ["save", "load", "inspect", "SerializationError", "CheckpointInfo"]

_STALE_AGE_S = 3600  # without file locks, a leftover this old is taken as a crashed save's


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


def _default_mode() -> int:
    """0666 less the process umask: the permissions ``open(path, "w")`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _remove_stale_temporaries(folder: str, base: str) -> None:
    """Delete the temporary files a killed save of ``base`` left behind (none being written now)."""
    pattern = re.compile(re.escape(f".{base}.") + r"[A-Za-z0-9_]{8}\.tmp")
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return
    for name in names:
        tmp = os.path.join(folder, name)
        try:
            if fcntl is None:
                if time.time() - os.stat(tmp).st_mtime > _STALE_AGE_S:
                    os.unlink(tmp)
                continue
            fd = os.open(tmp, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a live save holds it
                os.unlink(tmp)
            finally:
                os.close(fd)
        except OSError:
            continue


def save(module: Module, path: str | os.PathLike, optimizer: Any = None) -> None:
    """Write ``module``'s parameters (and ``optimizer``'s state) to ``path`` atomically, with checksums."""
    if not isinstance(module, Module):
        raise TypeError(f"save: module must be an nn.Module, got {type(module).__name__}")
    if optimizer is not None and not callable(getattr(optimizer, "state_dict", None)):
        raise TypeError(f"save: optimizer must be an nn optimizer, got {type(optimizer).__name__}")
    path = os.fspath(path)
    tensors, meta = _contents(module, optimizer)
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    _remove_stale_temporaries(folder, base)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            os.fchmod(f.fileno(), _default_mode())  # mkstemp makes 0600; an ordinary file is wanted
            write_checkpoint(f, tensors, meta)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)  # still locked: a concurrent save never takes it for a leftover
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


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
            for k in params:
                ckpt.read_into(k, own[k].data)
