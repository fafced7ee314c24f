"""Every error tapegrad raises, and the helpers that make their messages name the user's code."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import CodeType, FrameType

__all__ = [
    "TapeError", "GradcheckError", "ShapeError", "IndexShapeError", "AnomalyError", "InPlaceError", "CheckpointError",
    "call_site", "scope_text", "describe_tensor",
]  # fmt: skip


class TapeError(RuntimeError):
    """Misuse of a tape: a second replay of a one-shot tape, a target it never recorded, ..."""


class GradcheckError(AssertionError):
    """Raised by `tg.gradcheck` when an analytical gradient disagrees with finite differences."""


class ShapeError(ValueError):
    """Operands whose shapes, dtypes or devices do not fit the op they were given to."""


class IndexShapeError(ShapeError, IndexError):
    """A dimension or index out of range for an operand's shape (both a `ValueError` and, as in
    torch, an `IndexError`)."""


class AnomalyError(FloatingPointError):
    """Raised inside `tg.detect_anomaly()` at the first NaN or Inf of a forward or backward pass."""


class CheckpointError(TapeError):
    """`tg.checkpoint`'s recomputation of a block differs from its first run (output shape, dtype
    or values, or an input changed in place): the block is not pure (torch.utils.checkpoint's
    name for the same error). A weight file that cannot be loaded is `nn.SerializationError`."""


class InPlaceError(TapeError):
    """A tensor that a record saved for its VJP was modified in place before the replay."""


# Frames from these folders are the library's own; a call site is the first frame outside them.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tapegrad/engine/ -> the root
_LIBRARY_DIRS = tuple(os.path.join(_ROOT, pkg) + os.sep for pkg in ("tapegrad", "nn", "viz"))
# torch's own Python frames too: torch.split(t) and torch's F.pad(t) reach tapegrad through
# torch's __torch_function__ handling
_TORCH = importlib.util.find_spec("torch")
if _TORCH is not None and _TORCH.submodule_search_locations:
    _LIBRARY_DIRS += tuple(os.path.join(d, "") for d in _TORCH.submodule_search_locations)
_internal: dict[CodeType, bool] = {}
# (code, offset of the call instruction): the line is found only when a message needs it (`site_line`):
# a frame's f_lineno scans the code's line table, about 10k instructions, once per recorded op
SiteKey = tuple[CodeType, int]


def _is_internal(code: CodeType) -> bool:
    known = _internal.get(code)
    if known is None:
        filename = code.co_filename
        known = filename.startswith(_LIBRARY_DIRS) or filename.startswith("<frozen ")
        _internal[code] = known
    return known


# What `call_site_key` returns when every frame is the library's (`python -m tapegrad ...`: runpy's
# frames are frozen): a key, not None, so that `nn.Module.__call__` caches it on its scope as it
# caches a user's line, and the ops inside do not walk the whole stack again, one walk each.
NO_USER_FRAME: SiteKey = (compile("", "<no user frame>", "exec"), 0)


def call_site_key(depth: int = 1) -> SiteKey:
    """The (code, instruction offset) of the innermost frame outside the library; cheap enough to store per
    op (`site_line` gives its line).

    `NO_USER_FRAME` when there is none.
    """
    frame: FrameType | None = sys._getframe(depth)
    known = _internal  # the cache lookup inlined: this runs once per recorded op
    while frame is not None:
        code = frame.f_code
        internal = known.get(code)
        if internal is None:
            internal = _is_internal(code)
        if not internal:
            return code, frame.f_lasti
        frame = frame.f_back
    return NO_USER_FRAME


def library_class(cls: type) -> bool:
    """Whether ``cls`` was defined inside the library (a user's subclass of a library class is not).

    `nn.Module.__call__` hands the user's call site to every op of a library module's call (see
    `state.Scope`): a library module's ``forward`` runs library code and other modules only.
    Asked once per class, when it is defined (`nn.Module.__init_subclass__`).
    """
    filename = getattr(sys.modules.get(cls.__module__), "__file__", None) or ""
    return filename.startswith(_LIBRARY_DIRS)


def site_line(key: SiteKey) -> int | None:
    """The source line of a key from `call_site_key` (what the frame's f_lineno was)."""
    code, offset = key
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line
    return None


def format_site(key: SiteKey | None) -> str:
    """'file.py:12 in fn' for a key from `call_site_key`, or 'unknown location'."""
    if key is None or key is NO_USER_FRAME:
        return "unknown location"
    code = key[0]
    return f"{code.co_filename}:{site_line(key)} in {code.co_name}"


def call_site() -> str:
    """Where the user's code called into the library, as 'file.py:12 in fn'."""
    return format_site(call_site_key(2))


def scope_text(scope: object) -> str:
    """' in 2 (Linear)' for a module scope, '' for none: the phrase every message appends."""
    return "" if scope is None else f" in {scope!r}"


def describe_tensor(data: object) -> str:
    """'(3, 4) float32 cpu' for a torch tensor (or anything with shape, dtype and device)."""
    dtype = str(getattr(data, "dtype", "?")).replace("torch.", "")
    return f"{tuple(getattr(data, 'shape', ()))} {dtype} {getattr(data, 'device', '?')}"
