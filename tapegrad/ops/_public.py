"""The ops as users call them: torch's ``axis=`` / ``keepdims=`` aliases of ``dim`` / ``keepdim``,
and a `tg.Tensor` back even when every input was a plain torch tensor.

`tapegrad.X` and the Tensor methods are these wrappers; `tapegrad.ops.X` stays the bare op, so
that VJP rules keep their raw-torch-in, raw-torch-out fast path.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from ..engine.primitives import Primitive
from ..engine.tensors import wrap

__all__ = ["takes_dim", "with_axis", "public"]

_ALIASES = {"axis": "dim", "keepdims": "keepdim"}


def takes_dim(fn: Any) -> bool:
    """Whether ``fn`` (a function or a primitive's forward) has a ``dim`` parameter."""
    target = fn.forward if isinstance(fn, Primitive) else fn
    try:
        return "dim" in inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def _renamed(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {_ALIASES.get(k, k): v for k, v in kwargs.items()}


def with_axis(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` accepting ``axis=`` for ``dim=`` and ``keepdims=`` for ``keepdim=``, as torch does."""

    @functools.wraps(fn)
    def op(*args: Any, **kwargs: Any) -> Any:
        if "axis" in kwargs or "keepdims" in kwargs:
            kwargs = _renamed(kwargs)
        return fn(*args, **kwargs)

    return op


def _as_tg(out: Any) -> Any:
    if type(out) is torch.Tensor:
        return wrap(out)
    if isinstance(out, tuple) and any(type(o) is torch.Tensor for o in out):
        items = [wrap(o) if type(o) is torch.Tensor else o for o in out]
        return type(out)(*items) if hasattr(out, "_fields") else tuple(items)
    return out


def public(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` returning `tg.Tensor`s also when given only torch tensors (``tg.where(mask, 4, 2)``),
    with the ``axis=`` alias where it takes ``dim``."""
    dims = takes_dim(fn)

    @functools.wraps(fn)
    def op(*args: Any, **kwargs: Any) -> Any:
        if dims and ("axis" in kwargs or "keepdims" in kwargs):
            kwargs = _renamed(kwargs)
        return _as_tg(fn(*args, **kwargs))

    return op
