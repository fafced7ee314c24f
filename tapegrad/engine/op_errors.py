"""What a primitive's failures say: a forward that raised (the op, its operands' shapes, dtypes and
devices, the module scope and the user's call site), and a NaN or Inf under `tg.detect_anomaly`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .errors import AnomalyError, IndexShapeError, ShapeError, call_site, describe_tensor, scope_text
from .release import Released
from .state import current
from .tensors import Tensor

if TYPE_CHECKING:
    from .primitives import Primitive, Record

__all__ = ["check_finite", "describe", "forward_error"]


def check_finite(data: Any, op: str, phase: str, record: Record | None = None) -> None:
    """Raise `AnomalyError` if ``data`` holds a NaN or Inf (used by `tg.detect_anomaly`).

    ``record`` is the record whose VJP produced ``data`` in the backward pass; a forward-pass
    check that runs inside a VJP rule (higher order) learns the record being replayed from the
    walk (``State.replaying``).
    """
    if isinstance(data, torch.Tensor) and data.is_floating_point() and not bool(torch.isfinite(data).all()):
        raise _anomaly(data, op, phase, record)


def _anomaly(data: torch.Tensor, op: str, phase: str, record: Record | None) -> AnomalyError:
    kind = "NaN" if bool(torch.isnan(data).any()) else "Inf"
    state = current()
    if record is None and phase == "forward":
        record = state.replaying
        if record is not None:
            op = f"{op} (inside the VJP of {record.primitive.name})"
    if record is None:
        return AnomalyError(
            f"{op} produced {kind} in the {phase} pass{scope_text(state.scope)}, called at {call_site()} "
            f"(output {describe_tensor(data)})"
        )
    return AnomalyError(
        f"{op} produced {kind} in the backward pass{scope_text(record.scope)}; "
        f"{record.primitive.name} was recorded at {record.call_site} on inputs {describe(record.inputs)}; "
        f"the backward pass was called at {call_site()}"
    )


def describe(args: Sequence[Any]) -> str:
    """'(3, 4) float32 cpu, (5,) float32 cpu' for the tensors among ``args``, numbers as they are."""
    parts = []
    for a in args:
        data = a.data if isinstance(a, Tensor) else a
        if isinstance(data, (torch.Tensor, Released)):
            dtype = str(data.dtype).replace("torch.", "")
            parts.append(f"{tuple(data.shape)} {dtype} {data.device}")
        else:
            parts.append(repr(data))
    return ", ".join(parts)


def forward_error(prim: Primitive, args: tuple, params: dict, err: Exception) -> Exception:
    """The error a primitive's forward raised, as one naming the op, the operands, the scope and the call site."""
    extra = f" with {', '.join(f'{k}={_short(v)}' for k, v in params.items())}" if params else ""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    mismatch = _mismatch(args)
    if mismatch:
        reason = f"{mismatch} ({reason})"
    msg = (
        f"{prim.name}: cannot apply to {describe(args)}{extra}{scope_text(current().scope)}, "
        f"called at {call_site()}: {reason}"
    )
    if isinstance(err, IndexError):
        return IndexShapeError(msg)
    return ShapeError(msg) if isinstance(err, (RuntimeError, ValueError)) else type(err)(msg)


def _short(value: Any) -> str:
    if isinstance(value, (torch.Tensor, Tensor)):
        return f"tensor {describe_tensor(value)}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _mismatch(args: tuple) -> str:
    """Name a device or float-dtype disagreement among the tensor operands, '' if there is none."""
    datas = [a.data if isinstance(a, Tensor) else a for a in args]
    datas = [d for d in datas if isinstance(d, torch.Tensor)]
    devices = list(dict.fromkeys(str(d.device) for d in datas))
    if len(devices) > 1:
        return f"operands are on different devices ({', '.join(devices)}); move them with .to(device)"
    dtypes = list(dict.fromkeys(str(d.dtype).replace("torch.", "") for d in datas if d.is_floating_point()))
    if len(dtypes) > 1:
        return f"dtype mismatch between {' and '.join(dtypes)}; cast one with .to(dtype)"
    return ""
