"""Picking and placing along a dimension: narrow and index_select (each with its adjoint, so
every order stays on the tape), split / chunk on the multi-output split_with_sizes (one record),
tensor_split on narrow and repeat_interleave on index_select; masked_select on the recorded
``index``; scatter and scatter_add (primitives whose VJPs are scatter and gather again)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..engine.errors import IndexShapeError, ShapeError, call_site
from ..engine.primitives import Primitive, primitive
from ..engine.tensors import Tensor
from ._operands import broadcast_shape, promote, raw
from .gathering import _gather
from .shape import index as _index
from .shape import reshape
from .shape_extra import split_with_sizes

__all__ = [
    "narrow", "split", "chunk", "tensor_split", "index_select", "masked_select", "repeat_interleave", "scatter",
    "scatter_add",
]  # fmt: skip


_narrow: Primitive = primitive(
    "narrow",
    lambda x, dim, start, length: x.narrow(dim, start, length),
    [lambda g, out, x, dim, start, length: narrow_backward(g, shape=tuple(x.shape), dim=dim, start=start)],
    "narrow(x, dim, start, length): the slice start:start + length of x along dim (a view).",
    saves=(),
)


def _narrow_backward(g: torch.Tensor, shape: Sequence[int], dim: int, start: int) -> torch.Tensor:
    d = dim % len(shape)
    return torch.ops.aten.slice_backward(g, list(shape), d, start, start + g.shape[d], 1)


narrow_backward: Primitive = primitive(
    "narrow_backward",
    _narrow_backward,
    [lambda gg, out, g, shape, dim, start: _narrow(gg, dim=dim, start=start, length=g.shape[dim])],
    "narrow_backward(g, shape, dim, start): zeros of shape with g in the slice (narrow's VJP).",
    saves=(),
)


def narrow(input: Any, dim: int, start: int, length: int) -> Any:
    """The slice ``start:start + length`` of ``input`` along ``dim``, as torch.narrow."""
    size = raw(input).shape[dim]
    start = start + size if start < 0 else start
    if not (0 <= start and 0 <= length and start + length <= size):
        raise IndexShapeError(
            f"narrow: start {start} and length {length} do not fit dimension {dim} of size {size} "
            f"(called at {call_site()})"
        )
    return _narrow(input, dim=dim, start=start, length=length)


def split(tensor: Any, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple[Any, ...]:
    """Pieces of ``split_size_or_sections`` along ``dim`` (the last one smaller), or of the sizes
    listed, as torch.split."""
    x = raw(tensor)
    size = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step} (called at {call_site()})")
        sizes = [min(step, size - start) for start in range(0, size, step)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != size:
            raise ShapeError(
                f"split: sections {sizes} add up to {sum(sizes)}, not to dimension {dim}'s size {size} of "
                f"{tuple(x.shape)} (called at {call_site()})"
            )
    return split_with_sizes(tensor, sizes=tuple(sizes), dim=dim)  # one record for all the pieces


def chunk(input: Any, chunks: int, dim: int = 0) -> tuple[Any, ...]:
    """At most ``chunks`` equal pieces along ``dim`` (the last one smaller), as torch.chunk."""
    size = raw(input).shape[dim]
    return split(input, max(1, -(-size // chunks)), dim)


def tensor_split(input: Any, indices_or_sections: int | Sequence[int], dim: int = 0) -> tuple[Any, ...]:
    """``input`` in sections (sizes differing by at most one) or cut at the indices listed, as torch.tensor_split."""
    size = raw(input).shape[dim]
    if isinstance(indices_or_sections, int):
        n = indices_or_sections
        sizes = [size // n + (1 if i < size % n else 0) for i in range(n)]
    else:
        bounds = [0, *(min(max(int(i), 0), size) for i in indices_or_sections), size]
        sizes = [max(b - a, 0) for a, b in zip(bounds, bounds[1:])]
    pieces, start = [], 0
    for s in sizes:
        pieces.append(_narrow(input, dim=dim, start=start, length=s))
        start += s
    return tuple(pieces)


def _int_index(op: str, idx: Any) -> torch.Tensor:
    i = raw(idx)
    if not isinstance(i, torch.Tensor):
        i = torch.as_tensor(i)
    if i.is_floating_point() or i.dtype is torch.bool:
        raise TypeError(f"{op}: index must be an integer tensor, got a {i.dtype} tensor (called at {call_site()})")
    return i


_index_select: Primitive = primitive(
    "index_select",
    lambda x, dim, index: torch.index_select(x, dim, index),
    [lambda g, out, x, dim, index: index_select_backward(g, dim=dim, index=index, shape=tuple(x.shape))],
    "index_select(x, dim, index): the slices of x along dim at a 1-D integer index.",
    saves=(),
)
index_select_backward: Primitive = primitive(
    "index_select_backward",
    lambda g, dim, index, shape: g.new_zeros(tuple(shape)).index_add_(dim, index, g),
    [lambda gg, out, g, dim, index, shape: _index_select(gg, dim=dim, index=index)],
    "index_select_backward(g, dim, index, shape): zeros of shape with g's slices added at index "
    "(index_select's VJP; repeats add up).",
    saves=(),
)


def index_select(input: Any, dim: int, index: Any) -> Any:
    """The slices of ``input`` along ``dim`` at the 1-D integer ``index`` (repeats allowed), as torch.index_select."""
    i = _int_index("index_select", index)
    if i.dim() > 1:
        raise ShapeError(f"index_select: index must be 0-D or 1-D, got {tuple(i.shape)} (called at {call_site()})")
    x = raw(input)
    size = x.shape[dim] if x.dim() else 1
    if i.numel() and (int(i.min()) < -size or int(i.max()) >= size):
        raise IndexShapeError(
            f"index_select: index values lie in [{int(i.min())}, {int(i.max())}], outside dimension {dim} of "
            f"size {size} of input {tuple(x.shape)} (called at {call_site()})"
        )
    i = i.reshape(-1) % size if i.numel() else i.reshape(-1)  # negative entries count from the end, as in x[idx]
    if not x.dim():  # torch: a 0-d input gives a 0-d output
        return reshape(_index_select(reshape(input, (1,)), dim=0, index=i), ())
    return _index_select(input, dim=dim % x.dim(), index=i)


def masked_select(input: Any, mask: Any) -> Any:
    """The 1-D tensor of ``input``'s values where the bool ``mask`` holds (both broadcast), as torch.masked_select."""
    m = raw(mask)
    if not isinstance(m, torch.Tensor) or m.dtype is not torch.bool:
        raise TypeError(f"masked_select: mask must be a bool tensor (called at {call_site()})")
    shape = broadcast_shape("masked_select", input, m)
    x = input if raw(input).shape == shape else input.expand(shape)
    return _index(x, m.expand(shape))


def repeat_interleave(input: Any, repeats: Any, dim: int | None = None, *, output_size: int | None = None) -> Any:
    """Each element (slice along ``dim``; of the flattened input when None) repeated ``repeats`` times,
    as torch.repeat_interleave; ``repeats`` an int or one count per element."""
    x = input if dim is not None else reshape(input, (-1,))
    d = 0 if dim is None else dim
    size = raw(x).shape[d]
    counts = raw(repeats)
    counts = counts if isinstance(counts, torch.Tensor) else torch.tensor(counts)
    picks = torch.repeat_interleave(torch.arange(size, device=raw(x).device), counts.to(raw(x).device))
    return _index_select(x, dim=d % raw(x).dim(), index=picks)


def _scatter_fwd(x: torch.Tensor, src: Any, dim: int, index: torch.Tensor) -> torch.Tensor:
    return x.scatter(dim, index, src)


_scatter: Primitive = primitive(
    "scatter",
    _scatter_fwd,
    [
        lambda g, out, x, src, dim, index: _scatter(g, 0.0, dim=dim, index=index),
        lambda g, out, x, src, dim, index: _gather(g, dim=dim, index=index),
    ],
    "scatter(x, src, dim, index): x with src's values (or a number) written at index along dim.",
    saves=(),
)
_scatter_add: Primitive = primitive(
    "scatter_add",
    lambda x, src, dim, index: x.scatter_add(dim, index, src),
    [lambda g, out, x, src, dim, index: g, lambda g, out, x, src, dim, index: _gather(g, dim=dim, index=index)],
    "scatter_add(x, src, dim, index): x with src's values added at index along dim (repeats add up).",
    saves=(),
)


def _scatter_args(op: str, input: Any, dim: int, index: Any, src: Any) -> tuple[Any, Any, torch.Tensor]:
    i = _int_index(op, index)
    x = raw(input)
    if i.dim() != x.dim():
        raise ShapeError(
            f"{op}: index {tuple(i.shape)} has {i.dim()} dimensions but input {tuple(x.shape)} has {x.dim()} "
            f"(called at {call_site()})"
        )
    if i.numel() and (int(i.min()) < 0 or int(i.max()) >= x.shape[dim]):
        raise IndexShapeError(
            f"{op}: index values lie in [{int(i.min())}, {int(i.max())}], outside [0, {x.shape[dim] - 1}] for dim "
            f"{dim} of input {tuple(x.shape)} (called at {call_site()})"
        )
    if isinstance(src, (Tensor, torch.Tensor)):
        if raw(src).dtype is not x.dtype:
            input, src = promote([input, src])
        if tuple(raw(src).shape) != tuple(i.shape):  # only the part of src that the index covers is read
            src = _index(src, tuple(slice(0, n) for n in i.shape))
    return input, src, i


def scatter(input: Any, dim: int, index: Any, src: Any = None, *, value: Any = None) -> Any:
    """``input`` with ``src``'s values (or a number ``value``) written at ``index`` along ``dim``, as torch.scatter."""
    input, source, i = _scatter_args("scatter", input, dim, index, value if src is None else src)
    return _scatter(input, source, dim=dim, index=i)


def scatter_add(input: Any, dim: int, index: Any, src: Any) -> Any:
    """``input`` with ``src``'s values added at ``index`` along ``dim`` (repeats add up), as torch.scatter_add."""
    input, source, i = _scatter_args("scatter_add", input, dim, index, src)
    return _scatter_add(input, source, dim=dim, index=i)
