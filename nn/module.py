"""`nn.Module` and `nn.Parameter`: models as trees of named sub-modules that own parameters and buffers."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import torch

from tapegrad._validate import ARGUMENT_ERRORS, layer_error
from tapegrad.engine.errors import call_site_key, library_class
from tapegrad.engine.state import Scope, current, per_thread
from tapegrad.engine.tensors import Tensor

from . import module_state as _state
from .module_hooks import Hooks, RemovableHandle, call_with_hooks
from .module_members import STORES, Members, get_state, replace_store, set_state
from .module_moves import Moves
from .module_state import IncompatibleKeys
from .module_tree import Tree

__all__ = ["Module", "Parameter", "IncompatibleKeys", "RemovableHandle"]

_F = TypeVar("_F", bound=Callable[..., Any], covariant=True)
_ABSENT = object()  # what `Module.__getattr__` gets from a store that lacks the name
_new = object.__new__


class _HasForward(Protocol[_F]):
    """What `Module.__call__` is typed from: a module's own ``forward``."""

    @property
    def forward(self) -> _F: ...


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


class Module(Hooks, Moves, Tree):
    """Base class of every layer and model (PyTorch's nn.Module contract on tapegrad tensors).

    Assigning a `Parameter` or a `Module` to an attribute registers it under that name; the
    name is the module's scope name, so ``__call__`` records ops "in 0 (Linear)". Buffers
    (`register_buffer`) are tensors that belong to the state but are not trained, such as
    BatchNorm's running statistics. Subclasses call ``super().__init__()`` first and implement
    `forward`.
    """

    _library_module = True  # whether the class was defined in the library (set per subclass)
    _hooked = False  # set per instance once a forward (pre-)hook is registered
    # set in __init__ with object.__setattr__ (below Module's own __setattr__), declared for checkers
    _parameters: OrderedDict[str, Any]  # `Members` stores: each mirrors its members into the instance dict
    _buffers: OrderedDict[str, Any]
    _non_persistent_buffers_set: set[str]
    _modules: OrderedDict[str, Any]
    _forward_hooks: OrderedDict[int, Any]
    _forward_pre_hooks: OrderedDict[int, Any]
    _name: str
    training: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._library_module = library_class(cls)

    def __init__(self) -> None:
        setattr_ = object.__setattr__
        for store in STORES:
            setattr_(self, store, Members(self))
        for store in ("_forward_hooks", "_forward_pre_hooks"):
            setattr_(self, store, OrderedDict())
        setattr_(self, "_non_persistent_buffers_set", set())
        setattr_(self, "_name", "")
        setattr_(self, "training", True)

    # --- calling -----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation of this module; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__} has no forward() method")

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        """``module(*args)``: `forward` inside the module's scope (and its hooks)."""
        try:  # state.current(), inlined: every module call opens a scope
            state = per_thread.state
        except AttributeError:
            state = current()
        parent = state.scope
        state.scope = scope = _new(Scope)  # Scope(parent, self._name, self, site), without the __init__ call
        scope.parent, scope.name = parent, self._name  # (pairs: no tuple built)
        scope.module, scope.site = self, None
        if self._library_module and "forward" not in self.__dict__:
            # its ops all report the user's line that called into it: found once here (or inherited), not per op
            scope.site = parent.site if parent is not None and parent.site is not None else call_site_key(2)
        try:
            if self._hooked:
                return call_with_hooks(self, args, kwargs)
            return self.forward(*args, **kwargs)
        except ARGUMENT_ERRORS as err:
            if not self._library_module:
                raise
            named = layer_error(err, repr(scope), type(self).__name__)  # bad input names the layer
            if named is err:
                raise
            raise named from err
        finally:
            state.scope = parent

    def _in_scope(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` inside this module's scope, as a call of the module runs `forward` (hooks aside):
        how a container runs two children as one fused op (nn.Sequential: Linear + activation)."""
        try:  # state.current(), inlined, as in `_call`
            state = per_thread.state
        except AttributeError:
            state = current()
        parent = state.scope
        site = None
        if self._library_module and "forward" not in self.__dict__:
            site = parent.site if parent is not None and parent.site is not None else call_site_key(2)
        state.scope = Scope(parent, self._name, self, site)
        try:
            return fn(*args)
        finally:
            state.scope = parent

    if TYPE_CHECKING:
        # For type checkers calling a module is calling its forward: model(x) has the parameter
        # and return types of the subclass's own forward (a property typed by it).
        @property
        def __call__(self: _HasForward[_F]) -> _F: ...

    else:
        __call__ = _call

    # --- registration --------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            if isinstance(value, (Parameter, Module)):
                owner = type(self).__name__
                raise AttributeError(f"cannot assign {name!r} before {owner}.__init__ called super().__init__()")
            object.__setattr__(self, name, value)
        elif isinstance(value, Parameter):
            _state.forget(self, name, "_parameters")
            params[name] = value
        elif isinstance(value, Module):
            _state.forget(self, name, "_modules")
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
        elif name in self._buffers:
            if value is not None and not isinstance(value, (torch.Tensor, Tensor)):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (a tensor or None)")
            self._buffers[name] = value
        elif name in STORES:  # model._modules = OrderedDict(...): that dict is the store from now on
            replace_store(self, name, value)
        else:
            object.__setattr__(self, name, value)

    if not TYPE_CHECKING:  # hidden from type checkers, so that a typo (model.wieght) is an error

        def __getattr__(self, name: str) -> Any:
            # Only called when normal lookup fails: a member is found in the instance dict (module_members)
            # unless its class defines the name too or a store is a plain dict the user assigned.
            d = self.__dict__
            if "_modules" in d:  # (not yet during __init__)
                for members in (d["_parameters"], d["_buffers"], d["_modules"]):  # torch's order
                    found = members.get(name, _ABSENT)
                    if found is not _ABSENT:
                        return found
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __getstate__(self) -> dict[str, Any]:
        return get_state(self)  # pickling and copying leave the stores' mirror out...

    def __setstate__(self, state: dict[str, Any]) -> None:
        set_state(self, state)  # ...and the copy mirrors its own stores

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or ``None``: a declared but absent parameter such as a missing bias)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be an nn.Parameter or None")
        _state.check_name(self, "register_parameter", name, "_parameters")
        _state.forget(self, name, "_parameters")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Register ``tensor`` (a torch or tapegrad tensor, or None) as a buffer: state that is saved,
        loaded and moved with the module but not trained. ``persistent=False`` leaves it out of
        `state_dict` (and checkpoints)."""
        if tensor is not None and not isinstance(tensor, (torch.Tensor, Tensor)) or isinstance(tensor, Parameter):
            raise TypeError(
                f"register_buffer: cannot assign {type(tensor).__name__} to buffer {name!r} (a tensor or None)"
            )
        _state.check_name(self, "register_buffer", name, "_buffers")
        _state.forget(self, name, "_buffers")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a child module under ``name`` (its scope name and state_dict prefix)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be an nn.Module or None, got {type(module).__name__}")
        _state.check_name(self, "add_module", name, "_modules")
        if module is not None:
            object.__setattr__(module, "_name", name)
        self._modules[name] = module

    register_module = add_module

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

    # --- state -------------------------------------------------------------------------------------
    def state_dict(self, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Any]:
        """Dotted name -> torch data (shared, not copied) of every parameter and persistent buffer,
        module by module as torch orders them (``keep_vars=True``: the tensors themselves)."""
        return _state.state_dict(self, destination, prefix, keep_vars)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> IncompatibleKeys:
        """Copy values into the parameters and buffers in place, after checking every key and shape.

        As torch: with ``strict`` a missing or unexpected key raises `RuntimeError` listing them;
        a shape mismatch always does. Nothing is changed when an error is raised. ``assign=True``
        makes the modules hold the given tensors instead of copying into their own.
        """
        return _state.load_state_dict(self, state_dict, strict, assign)

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
