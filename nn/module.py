"""`nn.Module` and `nn.Parameter`: models as trees of named sub-modules that own parameters."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from tapegrad.errors import call_site_key, library_class
from tapegrad.state import _LOCAL, Scope, current
from tapegrad.tensor import Tensor

__all__ = ["Module", "Parameter", "IncompatibleKeys"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A `tg.Tensor` that a `Module` registers as trainable: ``requires_grad=True`` by default.

    Wraps a ``torch.Tensor`` (or another tensor's data) without copying, as PyTorch's nn.Parameter.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = torch.empty(0)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model (PyTorch's nn.Module contract on tapegrad tensors).

    Assigning a `Parameter` or a `Module` to an attribute registers it under that name; the
    name is the module's scope name, so ``__call__`` records ops "in 0 (Linear)". Subclasses
    call ``super().__init__()`` first and implement `forward`.
    """

    _library_module = True  # whether the class was defined in the library (set per subclass)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._library_module = library_class(cls)

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_name", "")
        object.__setattr__(self, "training", True)

    # --- calling -----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation of this module; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__} has no forward() method")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:  # state.current(), inlined: every module call opens a scope
            state = _LOCAL.state
        except AttributeError:
            state = current()
        parent = state.scope
        site = None
        if self._library_module and "forward" not in self.__dict__:
            # the ops of a library module all report the user's line that called into it: found
            # once here (or inherited from the enclosing library module), not once per op
            site = parent.site if parent is not None and parent.site is not None else call_site_key(2)
        state.scope = Scope(parent, self._name, self, site)
        try:
            return self.forward(*args, **kwargs)
        finally:
            state.scope = parent

    # --- registration --------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            if isinstance(value, (Parameter, Module)):
                owner = type(self).__name__
                raise AttributeError(f"cannot assign {name!r} before {owner}.__init__ called super().__init__()")
            object.__setattr__(self, name, value)
        elif isinstance(value, Parameter):
            self._modules.pop(name, None)
            self.__dict__.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            self.__dict__.pop(name, None)
            object.__setattr__(value, "_name", name)
            self._modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} (nn.Parameter or None)")
            params[name] = None
        elif name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} (nn.Module or None)")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: parameters and children live in their dicts.
        d = self.__dict__
        if "_parameters" in d and name in d["_parameters"]:
            return d["_parameters"][name]
        if "_modules" in d and name in d["_modules"]:
            return d["_modules"][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or ``None``: a declared but absent parameter such as a missing bias)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be an nn.Parameter or None")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a child module under ``name`` (its scope name and state_dict prefix)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be an nn.Module or None, got {type(module).__name__}")
        if module is not None:
            object.__setattr__(module, "_name", name)
        self._modules[name] = module

    register_module = add_module

    # --- traversal -------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each direct child."""
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        """The direct children."""
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and every descendant, each once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            kids = [(f"{name}.{n}" if name else n, c) for n, c in m.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        """This module and every descendant (pre-order)."""
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) such as ``("0.weight", ...)``, each parameter once."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter, each once, in registration order."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    # --- modes and gradients ----------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and its descendants; returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Set evaluation mode (``train(False)``); returns self."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the ``.grad`` of every parameter (``None``, or zeros with ``set_to_none=False``)."""
        for p in self.parameters():
            if p.grad is not None:
                p.grad = None if set_to_none else Tensor(torch.zeros_like(p.data))

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter; returns self."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    # --- dtype and device ---------------------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Move or cast every parameter in place (``model.to(torch.float64)``); returns self."""
        for p in self.parameters():
            new = p.data.to(*args, **kwargs)
            if new.dtype != p.data.dtype and not (new.is_floating_point() or new.is_complex()):
                raise TypeError(f"Module.to: parameters must stay floating point, not {new.dtype}")
            p.data = new
            if p.grad is not None:
                p.grad = Tensor(p.grad.data.to(*args, **kwargs))
        return self

    def double(self) -> Module:
        """Cast the parameters to float64; returns self."""
        return self.to(torch.float64)

    def float(self) -> Module:
        """Cast the parameters to float32; returns self."""
        return self.to(torch.float32)

    # --- state -------------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, torch.Tensor]:
        """Dotted name -> the parameter's torch data (shared, not copied), as torch returns."""
        return OrderedDict((name, p.data) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters in place, after checking every key and shape first.

        With ``strict`` a missing or unexpected key raises `KeyError` naming them; a shape
        mismatch always raises `ValueError`. Nothing is changed when an error is raised.
        """
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing key(s): {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected key(s): {', '.join(unexpected)}")
            raise KeyError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts))
        values = {}
        bad = []
        for name, p in own.items():
            if name not in state_dict:
                continue
            v = state_dict[name]
            v = v.data if isinstance(v, Tensor) else torch.as_tensor(v)
            if tuple(v.shape) != tuple(p.data.shape):
                bad.append(f"{name}: checkpoint {tuple(v.shape)}, model {tuple(p.data.shape)}")
            values[name] = v
        if bad:
            raise ValueError(f"load_state_dict for {type(self).__name__}: size mismatch for " + "; ".join(bad))
        for name, v in values.items():
            own[name].data.copy_(v)
        return IncompatibleKeys(missing, unexpected)

    # --- repr -----------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in its repr (torch's hook)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not self._modules:
            return f"{type(self).__name__}({lines[0]})"
        body = "\n  ".join(lines)
        return f"{type(self).__name__}(\n  {body}\n)"
