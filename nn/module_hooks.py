"""Forward hooks and pre-hooks of `nn.Module`, with torch's signatures and removable handles."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from tapegrad.engine.hooks import RemovableHandle

__all__ = ["Hooks", "RemovableHandle", "call_with_hooks"]


class Hooks:
    """The hook-registering methods of `nn.Module` (mixed into it)."""

    def register_forward_pre_hook(
        self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """Call ``hook(module, args)`` before each forward; a non-None result replaces the arguments
        (``hook(module, args, kwargs) -> (args, kwargs)`` with ``with_kwargs``). Returns a handle whose
        ``remove()`` unregisters it."""
        return _register(self, self._forward_pre_hooks, hook, prepend, with_kwargs, False)  # type: ignore[attr-defined]

    def register_forward_hook(
        self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False, always_call: bool = False
    ) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after each forward; a non-None result replaces the output
        (``hook(module, args, kwargs, output)`` with ``with_kwargs``; ``always_call`` runs it when the
        forward raises too). Returns a handle whose ``remove()`` unregisters it."""
        return _register(self, self._forward_hooks, hook, prepend, with_kwargs, always_call)  # type: ignore[attr-defined]


def _register(
    module: Any, hooks: OrderedDict[int, Any], hook: Callable[..., Any], prepend: bool, kw: bool, always: bool
) -> RemovableHandle:
    if not callable(hook):
        raise TypeError(f"{type(module).__name__}: a hook must be callable, got {type(hook).__name__}")
    handle = RemovableHandle(hooks, lambda: _unhook(module))
    hooks[handle.id] = (hook, kw, always)
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    object.__setattr__(module, "_hooked", True)
    return handle


def call_with_hooks(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``module.forward(*args, **kwargs)`` with its pre-hooks before and its forward hooks after."""
    for hook, kw, _ in list(module._forward_pre_hooks.values()):
        if kw:
            result = hook(module, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(
                        f"forward pre-hook must return None or a tuple of (new_args, new_kwargs), but got {result!r}."
                    )
                args, kwargs = result
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    try:
        output = module.forward(*args, **kwargs)
    except BaseException:
        for hook, kw, always in list(module._forward_hooks.values()):
            if always:
                try:
                    hook(module, args, kwargs, None) if kw else hook(module, args, None)
                except Exception:
                    pass  # the forward's own error is the one to report
        raise
    for hook, kw, _ in list(module._forward_hooks.values()):
        result = hook(module, args, kwargs, output) if kw else hook(module, args, output)
        if result is not None:
            output = result
    return output


def _unhook(module: Any) -> None:
    # the module's fast path skips hook handling while it has none
    if not module._forward_hooks and not module._forward_pre_hooks:
        object.__setattr__(module, "_hooked", False)
