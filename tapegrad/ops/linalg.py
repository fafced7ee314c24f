"""Matrix products: matmul with torch's broadcasting rules, and the fused affine map `linear`."""

from __future__ import annotations

from typing import Any

import torch

from ..engine.primitives import primitive
from . import _recycle

__all__ = ["matmul", "linear"]


def _promoted(g: Any, x: Any, y: Any) -> Any:
    """g reshaped as if 1-D operands had been made matrices (torch's matmul promotion)."""
    shape = list(g.shape)
    if x.ndim == 1:
        shape.insert(len(shape) - (0 if y.ndim == 1 else 1), 1)
    if y.ndim == 1:
        shape.append(1)
    return g.reshape(shape)


def _as_matrix(x: Any, row: bool) -> Any:
    if x.ndim != 1:
        return x
    return x.reshape(1, -1) if row else x.reshape(-1, 1)


def _matmul_x(g: Any, out: Any, x: Any, y: Any) -> Any:
    if x.ndim == 2 and y.ndim == 2:
        return g @ y.mT
    gx = _promoted(g, x, y) @ _as_matrix(y, row=False).mT
    return gx.sum_to_size(_as_matrix(x, row=True).shape).reshape(x.shape)


def _matmul_y(g: Any, out: Any, x: Any, y: Any) -> Any:
    if x.ndim == 2 and y.ndim == 2:
        return x.mT @ g
    gy = _as_matrix(x, row=True).mT @ _promoted(g, x, y)
    return gy.sum_to_size(_as_matrix(y, row=False).shape).reshape(y.shape)


matmul = primitive(
    "matmul",
    torch.matmul,
    [_matmul_x, _matmul_y],
    "matmul(x, y): matrix product with torch.matmul's rules for 1-D and batched operands.",
    saves=(0, 1),
)


# aten's linear, through its own Python binding: x @ weight.T + bias with the bias in the matmul (addmm) for a
# 2-D or contiguous input, as torch.nn.Linear runs it; one call instead of five tensor methods from Python
_ATEN_LINEAR: Any = torch._C._nn.linear


def _linear_fwd(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return _ATEN_LINEAR(x, weight, bias)


def _linear_weight(g: Any, out: Any, x: Any, weight: Any, bias: Any = None) -> Any:
    if x.ndim == 2:
        return g.mT @ x
    return g.reshape(-1, g.shape[-1]).mT @ x.reshape(-1, x.shape[-1])


def _linear_weight_raw(
    g: torch.Tensor, out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    # a wide layer's weight gradient goes into a buffer of an earlier step that nothing holds
    # any more (ops/_recycle): no multi-MB allocation faulted in again on every step
    return _recycle.mm(g.mT, x) if x.ndim == 2 else _linear_weight(g, out, x, weight, bias)


_linear_rules = [
    lambda g, out, x, weight, bias=None: g @ weight,
    _linear_weight,
    lambda g, out, x, weight, bias=None: g.sum(0) if g.ndim == 2 and bias.ndim == 1 else g.sum_to_size(bias.shape),
]
linear = primitive(
    "linear",
    _linear_fwd,
    _linear_rules,
    "linear(x, weight, bias=None): x @ weight.T + bias, as PyTorch's functional linear.",
    fast_vjp=[_linear_rules[0], _linear_weight_raw, _linear_rules[2]],
    saves=(0, 1),
)
