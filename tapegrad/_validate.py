"""Every public function's bad-argument errors name the function: one wrapper, applied to all.

Each plain function that `tapegrad` exports (primitives name themselves already, see
`primitive._forward_error`) runs inside `named`: an error that Python or torch raised while the
function handled its arguments (``'NoneType' object is not iterable``, ``new(): invalid data
type 'str'``) comes back as the same kind of error (an ``AttributeError`` as a ``TypeError``,
as torch reports a wrong type) saying ``cat: ...`` and the user's call site. An error that
already names the function, or that the user's own code raised (a function passed to a
transform), passes through untouched. New ops are covered by being exported, not by a list.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from .engine.errors import _LIBRARY_DIRS, call_site
from .engine.primitives import Primitive

__all__ = ["named", "name_errors", "layer_error", "ARGUMENT_ERRORS"]

ARGUMENT_ERRORS = _KINDS = (TypeError, ValueError, AttributeError, IndexError, RuntimeError, KeyError)
_TORCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["torch"].__file__ or ""))) + os.sep


def _raised_inside(tb: TracebackType | None) -> bool:
    """Whether the innermost Python frame of ``tb`` is the library's or torch's (not user code)."""
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    if last is None:
        return True
    filename = last.tb_frame.f_code.co_filename
    return filename.startswith(_LIBRARY_DIRS) or filename.startswith(_TORCH_DIR) or filename.startswith("<frozen ")


def _renamed(err: BaseException, name: str) -> BaseException:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if f"{name}:" in text or f"{name}(" in text or not _raised_inside(err.__traceback__):
        return err
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    message = f"{name}: {first} (called at {call_site()})"
    kind = TypeError if isinstance(err, AttributeError) else type(err)
    try:
        return kind(message)
    except Exception:  # an error class with another constructor: say it as a TypeError
        return TypeError(message)


def layer_error(err: BaseException, name: str, cls: str) -> BaseException:
    """An error out of a library layer's forward, saying ``name`` (the layer's scope, '0 (Linear)')
    unless it names the layer's class ``cls`` already or the user's own code raised it. The first
    layer it leaves decides: enclosing layers (a Sequential around it) pass it on untouched."""
    if getattr(err, "_tapegrad_layer", False):
        return err
    new = err if cls in str(err) else _renamed(err, name)
    try:
        new._tapegrad_layer = True  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - an exception class with __slots__
        pass
    return new


def named(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``fn``, whose errors about its arguments name ``name`` (see the module docstring)."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _KINDS as err:
            new = _renamed(err, name)
            if new is err:
                raise
            raise new from err

    return call


def name_errors(namespace: dict[str, Any], names: Iterable[str]) -> None:
    """Wrap each plain function among ``names`` in ``namespace`` with `named`, in place."""
    for name in names:
        obj = namespace.get(name)
        if callable(obj) and not isinstance(obj, (type, Primitive)) and hasattr(obj, "__code__"):
            namespace[name] = named(obj, name)
