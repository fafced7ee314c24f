"""TEMPORARY: `Tensor.register_post_accumulate_grad_hook` until the core provides it.

The core's reverse walk fires the hook as each leaf's gradient becomes final; this stand-in
fires the hooks after `Tape.backward` accumulated all the leaves (same results, no overlap).
It installs itself only when the core lacks the method, and goes away when the core has it.
"""

from __future__ import annotations

import weakref
from typing import Any

from tapegrad.tape import Tape
from tapegrad.tensor import Tensor, wrap

_HOOKS: dict[int, tuple[Any, list]] = {}


class _Handle:
    """Removes one registered hook."""

    def __init__(self, key: int, hook: Any) -> None:
        self.key, self.hook = key, hook

    def remove(self) -> None:
        """Unregister the hook."""
        entry = _HOOKS.get(self.key)
        if entry is not None and self.hook in entry[1]:
            entry[1].remove(self.hook)


def _register(self: Tensor, hook: Any) -> _Handle:
    """Run ``hook(self)`` after each backward pass accumulated this leaf's gradient (temporary stand-in)."""
    key = id(self)
    if key not in _HOOKS:
        _HOOKS[key] = (weakref.ref(self, lambda _, k=key, hooks=_HOOKS: hooks.pop(k, None)), [])
    _HOOKS[key][1].append(hook)
    return _Handle(key, hook)


def _backward(self: Tape, target: Tensor, grad_output: Tensor | None = None) -> None:
    """Accumulate the gradient of ``target`` into ``.grad`` of the leaves, then fire their hooks."""
    self._check_usable("backward")
    grads, raw = self._replay(target, grad_output, None, wrapped=False)
    for leaf, g in grads.values():
        if raw:
            g = wrap(g)
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        entry = _HOOKS.get(id(leaf))
        if entry is not None and entry[0]() is leaf:
            for hook in list(entry[1]):
                hook(leaf)


def install() -> None:
    """Add the stand-in to Tensor and Tape unless the core already has the hook."""
    if not hasattr(Tensor, "register_post_accumulate_grad_hook"):
        Tensor.register_post_accumulate_grad_hook = _register
        Tape.backward = _backward
