"""The optimizer part of a checkpoint, checked against the optimizer it is loaded into.

Nothing here changes the optimizer: `optimizer_state` returns the state dict to load, or raises
`SerializationError` naming the metadata key or tensor that does not fit.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from .serialization_format import CheckpointFile, SerializationError
from .validation import check_hyperparameters

__all__ = ["OPT_PREFIX", "optimizer_state"]

OPT_PREFIX = "optimizer.state."
_STATE_KEY = re.compile(r"([0-9]{1,9})\.(.+)", re.ASCII)
_SCALAR = (bool, int, float, str, type(None))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _hyperparameter(where: str, name: str, saved: Any, own: Any) -> Any:
    """The saved value of ``name`` in the type of the optimizer's own value (a list becomes a tuple)."""
    if isinstance(own, bool):
        ok = isinstance(saved, bool)
    elif _is_number(own):
        ok = _is_number(saved)
    elif isinstance(own, (tuple, list)):
        ok = isinstance(saved, list) and len(saved) == len(own) and all(_is_number(v) for v in saved)
        saved = tuple(saved) if ok and isinstance(own, tuple) else saved
    elif own is None or isinstance(own, str):
        ok = saved is None or isinstance(saved, str)
    else:
        ok = True
    if not ok:
        raise SerializationError(f"{where}.{name} is {saved!r:.60}, not a value like the optimizer's {own!r:.60}")
    return saved


def _groups(path: str, saved: dict[str, Any], optimizer: Any) -> tuple[list[dict[str, Any]], dict[int, Any]]:
    groups = saved["param_groups"]
    owner = type(optimizer).__name__
    for i, g in enumerate(groups):
        params = g.get("params") if isinstance(g, dict) else None
        if not isinstance(params, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in params):
            raise SerializationError(f"{path}: optimizer.param_groups[{i}].params must be a list of parameter indices")
    if len(groups) != len(optimizer.param_groups) or any(
        len(s["params"]) != len(g["params"]) for s, g in zip(groups, optimizer.param_groups)
    ):
        sizes = [len(s["params"]) for s in groups]
        own = [len(g["params"]) for g in optimizer.param_groups]
        raise SerializationError(f"{path}: optimizer parameter groups differ: file {sizes}, optimizer {own}")
    indices = [i for s in groups for i in s["params"]]
    if sorted(indices) != list(range(len(indices))):
        raise SerializationError(
            f"{path}: optimizer.param_groups list parameter indices {indices[:20]}, not 0..{len(indices) - 1} once each"
        )
    by_index = {i: p for s, g in zip(groups, optimizer.param_groups) for i, p in zip(s["params"], g["params"])}
    checked = []
    for i, (s, g) in enumerate(zip(groups, optimizer.param_groups)):
        where = f"{path}: optimizer.param_groups[{i}]"
        own_keys, file_keys = set(g) - {"params"}, set(s) - {"params"}
        if own_keys - file_keys:
            raise SerializationError(f"{where} lacks {', '.join(sorted(own_keys - file_keys))}")
        if file_keys - own_keys:
            raise SerializationError(f"{where} has {', '.join(sorted(file_keys - own_keys))}, unknown to {owner}")
        group = {k: _hyperparameter(where, k, s[k], g[k]) for k in own_keys}
        try:
            check_hyperparameters(owner, group)
        except (TypeError, ValueError) as err:
            raise SerializationError(f"{where}: {err}") from None
        group["params"] = list(s["params"])
        checked.append(group)
    return checked, by_index


def optimizer_state(ckpt: CheckpointFile, optimizer: Any) -> dict[str, Any]:
    """The ``optimizer.load_state_dict`` argument stored in ``ckpt``, checked against ``optimizer``."""
    path = ckpt.path
    saved = (ckpt.meta or {}).get("optimizer")
    if saved is None:
        raise SerializationError(f"{path}: the checkpoint holds no optimizer state")
    if (
        not isinstance(saved, dict)
        or not isinstance(saved.get("class"), str)
        or not isinstance(saved.get("param_groups"), list)
        or not isinstance(saved.get("extra", {}), dict)
    ):
        raise SerializationError(f"{path}: metadata 'optimizer' must hold class, param_groups and extra")
    if saved["class"] != type(optimizer).__name__:
        raise SerializationError(f"{path}: optimizer state is for {saved['class']}, not {type(optimizer).__name__}")
    groups, by_index = _groups(path, saved, optimizer)
    state: dict[int, dict[str, Any]] = {}
    for key in ckpt.entries:
        if not key.startswith(OPT_PREFIX):
            continue
        match = _STATE_KEY.fullmatch(key[len(OPT_PREFIX) :])
        if match is None:
            raise SerializationError(f"{path}: optimizer state {key!r} is not named {OPT_PREFIX}<index>.<name>")
        idx, name = int(match.group(1)), match.group(2)
        if idx not in by_index:
            raise SerializationError(f"{path}: optimizer state {key!r} names parameter {idx} of {len(by_index)}")
        value, param = ckpt.tensor(key), by_index[idx]
        if not value.is_floating_point():
            raise SerializationError(
                f"{path}: optimizer state {key!r} has dtype {value.dtype}, not a floating point one"
            )
        if value.dim() != 0 and tuple(value.shape) != tuple(param.shape):
            raise SerializationError(
                f"{path}: optimizer state {key!r} has shape {tuple(value.shape)}, the parameter {tuple(param.shape)}"
            )
        state.setdefault(idx, {})[name] = value
    for idx_text, values in saved.get("extra", {}).items():
        where = f"{path}: optimizer.extra[{idx_text!r:.30}]"
        if not re.fullmatch(r"[0-9]{1,9}", idx_text) or int(idx_text) not in by_index:
            raise SerializationError(f"{where} does not name one of the {len(by_index)} parameters")
        if not isinstance(values, dict) or not all(isinstance(v, _SCALAR) for v in values.values()):
            raise SerializationError(f"{where} must map names to plain values")
        state.setdefault(int(idx_text), {}).update(values)
    return {"state": state, "param_groups": groups}


def snapshot(optimizer: Any) -> dict[str, Any]:
    """A deep copy of the optimizer's state dict, to put back if a load fails half-way."""
    sd = optimizer.state_dict()
    return {
        "state": {
            k: {n: v.clone() if isinstance(v, torch.Tensor) else v for n, v in s.items()}
            for k, s in sd["state"].items()
        },
        "param_groups": [dict(g) for g in sd["param_groups"]],
    }
