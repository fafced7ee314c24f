"""squeeze, unsqueeze, flatten and unflatten: torch's names, each one recorded ``reshape``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ._operands import raw
from .shape import reshape

__all__ = ["squeeze", "unsqueeze", "flatten", "unflatten"]


def _reshaped(op: str, input: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    x = raw(input)
    try:
        shape = fn(torch.empty(x.shape, device="meta")).shape
    except (RuntimeError, IndexError, TypeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise ShapeError(f"{op}: cannot apply to shape {tuple(x.shape)}: {reason} (called at {call_site()})") from None
    return input if shape == x.shape else reshape(input, shape)


def squeeze(input: Any, dim: int | Sequence[int] | None = None) -> Any:
    """``input`` without dimensions of size 1 (only those in ``dim`` when given), as torch.squeeze."""
    dims = dim if dim is None or isinstance(dim, int) else tuple(dim)
    return _reshaped("squeeze", input, lambda t: t.squeeze() if dims is None else t.squeeze(dims))


def unsqueeze(input: Any, dim: int) -> Any:
    """``input`` with a new dimension of size 1 at ``dim``, as torch.unsqueeze."""
    return _reshaped("unsqueeze", input, lambda t: t.unsqueeze(dim))


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Any:
    """``input`` with dimensions ``start_dim..end_dim`` merged into one, as torch.flatten."""
    return _reshaped("flatten", input, lambda t: t.flatten(start_dim, end_dim))


def unflatten(input: Any, dim: int, sizes: Sequence[int]) -> Any:
    """``input`` with dimension ``dim`` split into ``sizes`` (one may be -1), as torch.unflatten."""
    return _reshaped("unflatten", input, lambda t: t.unflatten(dim, tuple(sizes)))
