"""Rearranging primitives: flip, roll, tril / triu, diagonal (with its adjoint diagonal_scatter),
unfold (with unfold_backward), contiguous; and diag built from them. Each VJP is the adjoint
rearrangement, itself a primitive, so every order of gradient stays on the tape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import Primitive, primitive
from ._adjoint import adjoint_pair, self_adjoint
from ._operands import raw

# diagonal_scatter and unfold_backward (the VJPs) are not exported: torch's functions of those
# names take other arguments
__all__ = ["flip", "fliplr", "flipud", "roll", "tril", "triu", "diagonal", "diag", "unfold", "contiguous"]

# The rearrangements, each a linear map: its VJP is itself on the gradient or its adjoint (`_adjoint`)
_flip = self_adjoint("flip", lambda x, dims: torch.flip(x, dims), "x reversed along dims.")
_roll = self_adjoint(
    "roll",
    lambda x, shifts, dims: torch.roll(x, shifts, dims),
    "roll(x, shifts, dims): x shifted circularly (flattened first when dims is empty).",
    adjoint=lambda shifts, dims: {"shifts": tuple(-s for s in shifts), "dims": dims},
)
_tril = self_adjoint(
    "tril",
    lambda x, diagonal=0: torch.tril(x, diagonal),
    "tril(x, diagonal): the lower triangle of the last two dimensions, zeros above.",
)
_triu = self_adjoint(
    "triu",
    lambda x, diagonal=0: torch.triu(x, diagonal),
    "triu(x, diagonal): the upper triangle of the last two dimensions, zeros below.",
)
_diagonal, diagonal_scatter = adjoint_pair(
    "diagonal",
    lambda x, offset=0, dim1=0, dim2=1: torch.diagonal(x, offset, dim1, dim2),
    "diagonal(x, offset, dim1, dim2): the diagonal of the (dim1, dim2) planes, as a last dimension.",
    "diagonal_scatter",
    lambda d, shape, offset, dim1, dim2: torch.diagonal_scatter(d.new_zeros(tuple(shape)), d, offset, dim1, dim2),
    "diagonal_scatter(d, shape, offset, dim1, dim2): zeros of shape with d on the diagonal (diagonal's VJP).",
)
_unfold, unfold_backward = adjoint_pair(
    "unfold",
    lambda x, dimension, size, step: x.unfold(dimension, size, step),
    "unfold(x, dimension, size, step): the windows of x along dimension, as a new last dimension.",
    "unfold_backward",
    lambda g, shape, dimension, size, step: torch.ops.aten.unfold_backward(g, shape, dimension, size, step),
    "unfold_backward(g, shape, dimension, size, step): windows added back into x's shape (unfold's VJP).",
)
_contiguous: Primitive = primitive(
    "contiguous",
    lambda x: x.contiguous(),
    [lambda g, out, x: g],
    "x laid out contiguously in memory.",
    saves=(),
)


def _dims(dims: Any) -> tuple[int, ...]:
    return (dims,) if isinstance(dims, int) else tuple(dims)


def flip(input: Any, dims: int | Sequence[int]) -> Any:
    """``input`` reversed along ``dims``, as torch.flip."""
    return _flip(input, dims=_dims(dims))


def fliplr(input: Any) -> Any:
    """``input`` reversed along dimension 1, as torch.fliplr."""
    return flip(input, (1,))


def flipud(input: Any) -> Any:
    """``input`` reversed along dimension 0, as torch.flipud."""
    return flip(input, (0,))


def roll(input: Any, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> Any:
    """``input`` shifted circularly by ``shifts`` along ``dims`` (all of it, flattened, when None), as torch.roll."""
    return _roll(input, shifts=_dims(shifts), dims=() if dims is None else _dims(dims))


def tril(input: Any, diagonal: int = 0) -> Any:
    """The lower triangle of the last two dimensions (zeros above ``diagonal``), as torch.tril."""
    return _tril(input, diagonal=diagonal)


def triu(input: Any, diagonal: int = 0) -> Any:
    """The upper triangle of the last two dimensions (zeros below ``diagonal``), as torch.triu."""
    return _triu(input, diagonal=diagonal)


def diagonal(input: Any, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Any:
    """The diagonal ``offset`` of the (dim1, dim2) planes, as a last dimension, as torch.diagonal."""
    return _diagonal(input, offset=offset, dim1=dim1, dim2=dim2)


def diag(input: Any, diagonal: int = 0) -> Any:
    """A 1-D input as the ``diagonal`` of a square matrix, or a matrix's ``diagonal``, as torch.diag."""
    x = raw(input)
    if x.dim() == 2:
        return _diagonal(input, offset=diagonal, dim1=0, dim2=1)
    if x.dim() != 1:
        raise ShapeError(f"diag: expects a 1-D or 2-D input, got {tuple(x.shape)} (called at {call_site()})")
    n = x.shape[0] + abs(diagonal)
    return diagonal_scatter(input, shape=(n, n), offset=diagonal, dim1=0, dim2=1)


def unfold(input: Any, dimension: int, size: int, step: int) -> Any:
    """The windows of ``size`` every ``step`` along ``dimension``, as a new last dimension (Tensor.unfold)."""
    return _unfold(input, dimension=dimension, size=size, step=step)


def contiguous(input: Any) -> Any:
    """``input`` laid out contiguously (itself when it already is), as Tensor.contiguous."""
    return input if raw(input).is_contiguous() else _contiguous(input)
