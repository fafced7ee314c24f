"""How op front ends treat their operands: constants, broadcasting, dtype agreement, raw data."""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import ShapeError, call_site, describe_tensor
from ..engine.state import current
from ..engine.tensors import Tensor, wrap
from ._broadcast import broadcast_to, cast


def raw(x: Any) -> Any:
    """The torch data of a tg.Tensor, anything else unchanged (masks are computed on raw data)."""
    return x.data if isinstance(x, Tensor) else x


def _where() -> str:
    s = current().scope
    scope = f" in {s!r}" if s is not None else ""
    return f"{scope}, called at {call_site()}"


def align(op: str, *operands: Any) -> list[Any]:
    """Make tensor operands agree: torch's type promotion (a recorded ``cast`` for float tensors,
    so each gradient comes back in its input's own dtype), then one shape via ``broadcast_to``.

    Python numbers stay numbers; raw torch tensors mixed with tg.Tensors become constants. With
    no tg.Tensor among the operands nothing changes (VJP rules on raw torch broadcast natively).
    """
    if not any(isinstance(a, Tensor) for a in operands):
        return list(operands)
    ops = [wrap(a) if isinstance(a, torch.Tensor) else a for a in operands]
    tensors = [a for a in ops if isinstance(a, Tensor)]
    first = tensors[0].data
    shapes_differ = False
    for t in tensors[1:]:
        if t.data.dtype is not first.dtype:
            return align(op, *promote(ops))
        shapes_differ = shapes_differ or t.data.shape != first.shape
    if not shapes_differ:
        return ops
    shape = broadcast_shape(op, *tensors)
    return [broadcast_to(a, shape) if isinstance(a, Tensor) and a.data.shape != shape else a for a in ops]


def result_dtype(operands: Any) -> torch.dtype:
    """The dtype torch's type promotion gives the tensor operands (tg or torch; others ignored).

    Dimensioned tensors outrank 0-d ones of the same category (float32 (3,) with a float64 0-d
    tensor stays float32), as `torch.result_type` decides for each pair.
    """
    datas = [raw(a) for a in operands if isinstance(a, (Tensor, torch.Tensor))]
    acc = datas[0]
    for d in datas[1:]:
        dtype = torch.result_type(acc, d)
        acc = torch.empty((0,) if acc.dim() or d.dim() else (), dtype=dtype)
    return acc.dtype


def promote(operands: list[Any]) -> list[Any]:
    """The tensor operands in their promoted dtype: float tensors through the recorded ``cast``
    primitive (its VJP casts the gradient back), masks and integers as constants."""
    dtype = result_dtype(operands)
    out = []
    for a in operands:
        if isinstance(a, torch.Tensor):
            a = wrap(a)
        if isinstance(a, Tensor) and a.data.dtype is not dtype:
            a = cast(a, dtype=dtype) if a.data.is_floating_point() else wrap(a.data.to(dtype))
        out.append(a)
    return out


def broadcast_shape(op: str, *operands: Any) -> torch.Size:
    """The shape the tensor operands broadcast to, or a `ShapeError` naming ``op`` and every shape."""
    arrays = [raw(a) for a in operands if isinstance(a, (Tensor, torch.Tensor))]
    # torch.broadcast_shapes is Python over torch._refs (tens of microseconds): the rule inline
    ndim = max(len(a.shape) for a in arrays)
    out = [1] * ndim
    for a in arrays:
        shape = a.shape
        at = ndim - len(shape)
        for n in shape:
            m = out[at]
            if n != m:
                if m == 1:
                    out[at] = n
                elif n != 1:
                    break
            at += 1
        else:
            continue
        shapes = " and ".join(describe_tensor(a) for a in arrays)
        raise ShapeError(f"{op}: shapes {shapes} do not broadcast{_where()}")
    return torch.Size(out)


def tensor_operands(op: str, *operands: Any) -> list[Any]:
    """`align`'s result with each Python number first made a 0-d tensor of torch's result dtype
    (for the torch functions that take only tensors, as torch.atan2 and torch.fmod do)."""
    like = next((o for o in operands if isinstance(o, (Tensor, torch.Tensor))), None)
    if like is None:
        raise TypeError(f"{op}: expects at least one tensor, got {[type(o).__name__ for o in operands]}{_where()}")
    data = raw(like)
    tensors = [
        o
        if isinstance(o, (Tensor, torch.Tensor))
        else torch.tensor(o, dtype=torch.result_type(data, o), device=data.device)
        for o in operands
    ]
    return align(op, *tensors)
