"""Checkpoints in the safetensors format (no pickle), written atomically.

The file holds the module's parameters under their dotted names (``0.weight``) and, with an
optimizer, its state tensors under ``optimizer.state.<index>.<name>``; the optimizer's class,
hyperparameters and non-tensor state go as JSON into the header's metadata. A save writes a
temporary file in the same folder, fsyncs it and renames it over the target, so a crash
mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from typing import Any

import torch

from ._safetensors import SafetensorError
from ._safetensors import load as _st_load
from ._safetensors import save as _st_save
from .module import Module

__all__ = ["save", "load", "CheckpointError"]

FORMAT = "tapegrad-checkpoint"
VERSION = 1
_OPT_PREFIX = "optimizer.state."


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: truncated, corrupt, or not matching the model/optimizer."""


def _encode(module: Module, optimizer: Any = None) -> bytes:
    tensors = {name: t.detach().contiguous().clone() for name, t in module.state_dict().items()}
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "module": type(module).__name__}
    if optimizer is not None:
        sd = optimizer.state_dict()
        extra: dict[str, dict[str, Any]] = {}
        for idx, values in sd["state"].items():
            for name, v in values.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"{_OPT_PREFIX}{idx}.{name}"] = v.detach().contiguous().clone()
                else:
                    extra.setdefault(str(idx), {})[name] = v
        meta["optimizer"] = {"class": type(optimizer).__name__, "param_groups": sd["param_groups"], "extra": extra}
    return _st_save(tensors, metadata={"tapegrad": json.dumps(meta)})


def _default_mode() -> int:
    """0666 less the process umask: the permissions ``open(path, "w")`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def save(module: Module, path: str | os.PathLike, optimizer: Any = None) -> None:
    """Write ``module``'s parameters (and ``optimizer``'s state) to ``path`` atomically."""
    path = os.fspath(path)
    blob = _encode(module, optimizer)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _default_mode())  # mkstemp makes 0600; an ordinary file is wanted
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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


def _read(path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    with open(path, "rb") as f:
        blob = f.read()
    size = len(blob)
    if size < 8:
        raise CheckpointError(f"{path}: truncated checkpoint ({size} bytes, not even a header length)")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if 8 + header_len > size:
        raise CheckpointError(f"{path}: truncated checkpoint: header of {header_len} bytes but file has {size} bytes")
    try:
        header = json.loads(blob[8 : 8 + header_len])
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        raise CheckpointError(f"{path}: corrupt checkpoint: unreadable safetensors header ({err})") from None
    expected = 8 + header_len + max(ends, default=0)
    if size < expected:
        raise CheckpointError(f"{path}: truncated checkpoint: {size} bytes, the header needs {expected}")
    try:
        tensors = _st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: corrupt checkpoint: {err}") from None
    try:
        meta = json.loads((header.get("__metadata__") or {})["tapegrad"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: not a tapegrad checkpoint (no tapegrad metadata in the header)") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint format {meta.get('format')!r} {meta.get('version')!r}")
    return tensors, meta


def load(module: Module, path: str | os.PathLike, optimizer: Any = None) -> None:
    """Restore ``module`` (and ``optimizer``) from a checkpoint written by `save`.

    Everything is checked before anything changes: a truncated or corrupt file, missing or
    unexpected parameter names, wrong shapes, or optimizer state of another kind raise
    `CheckpointError` saying which.
    """
    path = os.fspath(path)
    tensors, meta = _read(path)
    params = {k: v for k, v in tensors.items() if not k.startswith(_OPT_PREFIX)}
    own = dict(module.named_parameters())
    missing = [k for k in own if k not in params]
    unexpected = sorted(k for k in params if k not in own)
    wrong = [
        f"{k}: file {tuple(params[k].shape)}, model {tuple(p.shape)}"
        for k, p in own.items()
        if k in params and tuple(params[k].shape) != tuple(p.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing from the file: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected in the file: {', '.join(unexpected)}")
    if wrong:
        problems.append(f"shape mismatch for {'; '.join(wrong)}")
    if problems:
        raise CheckpointError(f"{path}: checkpoint does not match the {type(module).__name__}: " + "; ".join(problems))
    opt_state = _optimizer_state(path, tensors, meta, optimizer) if optimizer is not None else None
    module.load_state_dict(params)
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)


def _optimizer_state(path: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any], optimizer: Any) -> dict:
    saved = meta.get("optimizer")
    if saved is None:
        raise CheckpointError(f"{path}: the checkpoint holds no optimizer state")
    if saved["class"] != type(optimizer).__name__:
        raise CheckpointError(f"{path}: optimizer state is for {saved['class']}, not {type(optimizer).__name__}")
    groups = saved["param_groups"]
    if len(groups) != len(optimizer.param_groups) or any(
        len(s["params"]) != len(g["params"]) for s, g in zip(groups, optimizer.param_groups)
    ):
        sizes = [len(s["params"]) for s in groups]
        own = [len(g["params"]) for g in optimizer.param_groups]
        raise CheckpointError(f"{path}: optimizer parameter groups differ: file {sizes}, optimizer {own}")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith(_OPT_PREFIX):
            continue
        idx_text, name = key[len(_OPT_PREFIX) :].split(".", 1)
        idx = int(idx_text)
        if not 0 <= idx < len(params):
            raise CheckpointError(f"{path}: optimizer state {key!r} names parameter {idx} of {len(params)}")
        if name != "step" and tuple(value.shape) != tuple(params[idx].shape):
            raise CheckpointError(
                f"{path}: optimizer state {key!r} has shape {tuple(value.shape)}, "
                f"the parameter {tuple(params[idx].shape)}"
            )
        state.setdefault(idx, {})[name] = value
    for idx, values in saved.get("extra", {}).items():
        state.setdefault(int(idx), {}).update(values)
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}
