"""The bookkeeping of `nn.Module`: names, traversal of members, ``state_dict`` and ``load_state_dict``."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch

from tapegrad.engine.tensors import Tensor

if TYPE_CHECKING:
    from .module import Module

__all__ = ["IncompatibleKeys", "forget", "check_name", "named_members", "state_dict", "load_state_dict"]

_STORES = ("_parameters", "_buffers", "_modules")


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys it did not find and those it did not use."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


def forget(module: Module, name: str, keep: str) -> None:
    """Drop ``name`` from every store but ``keep`` (and from the plain attributes): one name, one kind."""
    module.__dict__.pop(name, None)
    for store in _STORES:
        if store != keep:
            module.__dict__[store].pop(name, None)
    if keep != "_buffers":
        module._non_persistent_buffers_set.discard(name)


def check_name(module: Module, op: str, name: Any, store: str) -> None:
    """torch's checks on a new member's name: a non-empty str without dots, not another attribute."""
    if not isinstance(name, str):
        raise TypeError(f"{op}: name should be a string, got {type(name).__name__}")
    if name == "" or "." in name:
        raise KeyError(f'{op}: name can\'t be empty or contain ".", got {name!r}')
    if name not in module.__dict__[store] and (hasattr(type(module), name) or name in module.__dict__):
        raise KeyError(f"{op}: attribute {name!r} already exists")
    if any(name in module.__dict__[s] for s in _STORES if s != store):
        raise KeyError(f"{op}: attribute {name!r} already exists")


def named_members(module: Module, store: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Any]]:
    """(dotted name, member) of one store over the module tree, each member once."""
    seen: set[int] = set()
    mods = module.named_modules(prefix=prefix) if recurse else [(prefix, module)]
    for mod_name, m in mods:
        for name, t in m.__dict__[store].items():
            if t is None or id(t) in seen:
                continue
            seen.add(id(t))
            yield (f"{mod_name}.{name}" if mod_name else name), t


def get_submodule(module: Module, target: str) -> Module:
    """The descendant at dotted path ``target`` ('' is ``module`` itself), with torch's errors."""
    mod = module
    if target == "":
        return mod
    for item in target.split("."):
        if item not in mod._modules or mod._modules[item] is None:
            if hasattr(mod, item):
                raise AttributeError(f"`{item}` is not an nn.Module")
            raise AttributeError(f"{type(mod).__name__} has no attribute `{item}`")
        mod = mod._modules[item]
    return mod


def get_member(module: Module, target: str, store: str, kind: str) -> Any:
    """The parameter or buffer at dotted path ``target``, with torch's errors."""
    path, _, name = target.rpartition(".")
    mod = get_submodule(module, path)
    if name not in mod.__dict__[store]:
        raise AttributeError(f"{type(mod).__name__} has no {kind} `{name}`")
    return mod.__dict__[store][name]


def _own(module: Module, prefix: str, out: dict[str, tuple[Module, str, str, Any]]) -> None:
    """Fill ``out`` with key -> (module, store, name, tensor) in torch's state_dict order."""
    for name, p in module._parameters.items():
        if p is not None:
            out[prefix + name] = (module, "_parameters", name, p)
    for name, b in module._buffers.items():
        if b is not None and name not in module._non_persistent_buffers_set:
            out[prefix + name] = (module, "_buffers", name, b)
    for name, child in module._modules.items():
        if child is not None:
            _own(child, f"{prefix}{name}.", out)


def state_dict(module: Module, destination: Any, prefix: str, keep_vars: bool) -> OrderedDict[str, Any]:
    """Key -> the torch data of every parameter and persistent buffer (the tensors with ``keep_vars``)."""
    out: OrderedDict[str, Any] = OrderedDict() if destination is None else destination
    own: dict[str, tuple[Module, str, str, Any]] = {}
    _own(module, prefix, own)
    for key, (_, _, _, t) in own.items():
        out[key] = t if keep_vars else t.data if isinstance(t, Tensor) else t.detach()
    return out


def _raw(value: Any) -> torch.Tensor:
    return value.data if isinstance(value, Tensor) else torch.as_tensor(value)


def load_state_dict(module: Module, given: Mapping[str, Any], strict: bool, assign: bool) -> IncompatibleKeys:
    """Check every key and shape of ``given`` against ``module`` (torch's RuntimeError), then copy."""
    if not isinstance(given, Mapping):
        raise TypeError(f"Expected state_dict to be dict-like, got {type(given)}.")
    own: dict[str, tuple[Module, str, str, Any]] = {}
    _own(module, "", own)
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    errors = []
    if strict and missing:
        errors.append(f"Missing key(s) in state_dict: {', '.join(f'{chr(34)}{k}{chr(34)}' for k in missing)}. ")
    if strict and unexpected:
        errors.append(f"Unexpected key(s) in state_dict: {', '.join(f'{chr(34)}{k}{chr(34)}' for k in unexpected)}. ")
    values = {}
    for key, (_, _, _, t) in own.items():
        if key not in given:
            continue
        v = _raw(given[key])
        if v.shape != t.shape:
            errors.append(
                f"size mismatch for {key}: copying a param with shape {v.shape} from checkpoint, "
                f"the shape in current model is {t.shape}."
            )
        values[key] = v
    if errors:
        raise RuntimeError(f"Error(s) in loading state_dict for {type(module).__name__}:\n\t" + "\n\t".join(errors))
    with torch.no_grad():
        for key, v in values.items():
            owner, store, name, t = own[key]
            if not assign:
                (t.data if isinstance(t, Tensor) else t).copy_(v)
            elif isinstance(t, Tensor):
                t.data = v
            else:
                owner.__dict__[store][name] = v
    return IncompatibleKeys(missing, unexpected)
