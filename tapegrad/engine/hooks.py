"""Post-accumulate-grad hooks: `Tensor.register_post_accumulate_grad_hook`, torch's name and contract.

A hook ``hook(tensor)`` runs after a backward pass (`Tape.backward`, ``loss.backward()``, a
`tg.trace` step) accumulated the leaf's gradient into ``tensor.grad``, as soon as that gradient is
final: the reverse walk fires it right after replaying the first record that read the leaf, not at
the end, so that work on the gradient (a data-parallel all-reduce, clipping) overlaps the rest of
the backward pass. `Tape.gradient` does not touch ``.grad`` and runs no hooks.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, MutableMapping
from typing import Any

from .errors import TapeError, call_site

__all__ = ["RemovableHandle", "register_post_accumulate_grad_hook", "has_hooks", "run_hooks"]

HOOKS: dict[int, dict[int, Callable[[Any], None]]] = {}  # id(tensor) -> {handle id: hook}; falsy when none
_IDS = itertools.count()


class RemovableHandle:
    """What registering a hook returns (a tensor's or an `nn.Module`'s): ``handle.remove()``
    unregisters it, also as a context manager; removing twice is harmless."""

    __slots__ = ("id", "_hooks", "_after")

    def __init__(self, hooks: MutableMapping[int, Any], after_remove: Callable[[], None] | None = None) -> None:
        self.id = next(_IDS)  # the hook's key in ``hooks``, which the registering code sets
        self._hooks, self._after = hooks, after_remove

    def remove(self) -> None:
        """Unregister the hook."""
        self._hooks.pop(self.id, None)
        if self._after is not None:
            self._after()

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def register_post_accumulate_grad_hook(self: Any, hook: Callable[[Any], None]) -> RemovableHandle:
    """Run ``hook(tensor)`` each time a backward pass has accumulated this leaf's final gradient.

    The hook sees ``tensor.grad`` complete for this backward pass; its return value is ignored.
    Only leaves (tensors no tape recorded as an op's output) take these hooks, as in torch.
    """
    if not callable(hook):
        raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, got {type(hook).__name__}")
    if self._tape is not None:
        raise TapeError(
            "register_post_accumulate_grad_hook: post accumulate grad hooks cannot be registered on a "
            f"non-leaf tensor (one a tape recorded as an op's output); called at {call_site()}"
        )
    key = id(self)
    hooks = HOOKS.get(key)
    if hooks is None:
        hooks = HOOKS[key] = {}
        weakref.finalize(self, HOOKS.pop, key, None)  # an id is reused once its tensor is gone
    handle = RemovableHandle(hooks, lambda: _drop_if_empty(key, hooks))
    hooks[handle.id] = hook
    return handle


def _drop_if_empty(key: int, hooks: dict[int, Callable[[Any], None]]) -> None:
    if not hooks and HOOKS.get(key) is hooks:
        del HOOKS[key]


def has_hooks(t: Any = None) -> bool:
    """Whether ``t`` has post-accumulate-grad hooks (any tensor when ``t`` is None)."""
    return bool(HOOKS) if t is None else id(t) in HOOKS


def run_hooks(t: Any) -> None:
    """Call the hooks of ``t`` in registration order."""
    for hook in list(HOOKS.get(id(t), {}).values()):
        hook(t)
