"""How op front ends treat their operands: constants, broadcasting, dtype agreement, raw data."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ShapeError, call_site
from ..state import STATE
from ..tensor import Tensor, wrap


def raw(x: Any) -> Any:
    """The torch data of a tg.Tensor, anything else unchanged (masks are computed on raw data)."""
    return x.data if isinstance(x, Tensor) else x


def _where() -> str:
    scope = f" in {STATE.scope!r}" if STATE.scope is not None else ""
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
            names = " and ".join(str(u.dtype).replace("torch.", "") for u in tensors)
            raise ShapeError(f"{op}: dtype mismatch between {names}; cast one with .to(){_where()}")
        shapes_differ = shapes_differ or t.data.shape != first.shape
    if not shapes_differ:
        return ops
    try:
        shape = torch.broadcast_shapes(*(t.data.shape for t in tensors))
    except RuntimeError:
        shapes = " and ".join(str(tuple(t.shape)) for t in tensors)
        raise ShapeError(f"{op}: shapes {shapes} do not broadcast{_where()}") from None
    from .shape import broadcast_to

    return [broadcast_to(a, shape) if isinstance(a, Tensor) and a.data.shape != shape else a for a in ops]
