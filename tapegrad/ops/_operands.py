"""How op front ends treat their operands: constants, broadcasting, dtype agreement, raw data."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ShapeError, call_site, describe_tensor
from ..state import current
from ..tensor import Tensor, wrap
from ._broadcast import broadcast_to


def raw(x: Any) -> Any:
    """The torch data of a tg.Tensor, anything else unchanged (masks are computed on raw data)."""
    return x.data if isinstance(x, Tensor) else x


def _where() -> str:
    s = current().scope
    scope = f" in {s!r}" if s is not None else ""
    return f"{scope}, called at {call_site()}"


def align(op: str, *operands: Any) -> list[Any]:
    """Make tensor operands agree: same dtype (else `ShapeError`), same shape via ``broadcast_to``.

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
            if not (t.data.is_floating_point() and first.is_floating_point()):
                return align(op, *_promoted(ops))  # x * mask, x + int_tensor: as torch promotes
            names = " and ".join(describe_tensor(u.data) for u in tensors)
            raise ShapeError(f"{op}: dtype mismatch between {names}; cast one with .to(dtype){_where()}")
        shapes_differ = shapes_differ or t.data.shape != first.shape
    if not shapes_differ:
        return ops
    shape = broadcast_shape(op, *tensors)
    return [broadcast_to(a, shape) if isinstance(a, Tensor) and a.data.shape != shape else a for a in ops]


def _promoted(operands: list[Any]) -> list[Any]:
    """Non-float tensors (masks, integers: constants) cast to the float operand's dtype, else to
    their promoted integer dtype; float tensors of different dtypes are left to the caller's error."""
    datas = [a.data for a in operands if isinstance(a, Tensor)]
    floats = [d.dtype for d in datas if d.is_floating_point()]
    if floats:
        dtype = floats[0]
    else:
        dtype = datas[0].dtype
        for d in datas[1:]:
            dtype = torch.promote_types(dtype, d.dtype)
    return [wrap(a.data.to(dtype)) if isinstance(a, Tensor) and not a.data.is_floating_point() else a for a in operands]


def broadcast_shape(op: str, *operands: Any) -> torch.Size:
    """The shape the tensor operands broadcast to, or a `ShapeError` naming ``op`` and every shape."""
    arrays = [raw(a) for a in operands if isinstance(a, (Tensor, torch.Tensor))]
    try:
        return torch.broadcast_shapes(*(a.shape for a in arrays))
    except RuntimeError:
        shapes = " and ".join(describe_tensor(a) for a in arrays)
        raise ShapeError(f"{op}: shapes {shapes} do not broadcast{_where()}") from None


def same_dtype(op: str, operands: Any) -> None:
    """Raise `ShapeError` unless the floating point tensor operands share one dtype (no silent promotion)."""
    floats = [raw(a) for a in operands if isinstance(a, (Tensor, torch.Tensor)) and raw(a).is_floating_point()]
    if any(a.dtype is not floats[0].dtype for a in floats[1:]):
        names = " and ".join(describe_tensor(a) for a in floats)
        raise ShapeError(f"{op}: dtype mismatch between {names}; cast them to one dtype with .to(dtype){_where()}")
