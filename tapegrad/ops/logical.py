"""Boolean and bitwise ops and tests of closeness: constants that no tape records.

Their results are bool or integer tensors, which carry no gradient in torch either; each returns
a `tg.Tensor` (plain Python bools for ``allclose`` and ``equal``) whether given tg or torch tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..engine.errors import call_site
from ..engine.primitives import describe
from ..engine.tensors import Tensor, wrap
from ._operands import raw

__all__ = [
    "all", "any", "isclose", "allclose", "equal", "logical_and", "logical_or", "logical_xor", "logical_not",
    "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "isnan", "isinf", "isfinite",
]  # fmt: skip


def _run(op: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    datas = [raw(a) for a in args]
    try:
        return fn(*datas, **kwargs)
    except (RuntimeError, TypeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise TypeError(f"{op}: cannot apply to {describe(args)}, called at {call_site()}: {reason}") from None


def _elementwise(name: str, fn: Callable[..., torch.Tensor], doc: str) -> Callable[..., Tensor]:
    def op(*args: Any) -> Tensor:
        return wrap(_run(name, fn, *args))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{doc}, as torch.{name}: a constant no tape records."
    return op


logical_and = _elementwise("logical_and", torch.logical_and, "x and y, elementwise (nonzero is true)")
logical_or = _elementwise("logical_or", torch.logical_or, "x or y, elementwise (nonzero is true)")
logical_xor = _elementwise("logical_xor", torch.logical_xor, "x xor y, elementwise (nonzero is true)")
logical_not = _elementwise("logical_not", torch.logical_not, "not x, elementwise (nonzero is true)")
bitwise_and = _elementwise("bitwise_and", torch.bitwise_and, "x & y for bool and integer tensors")
bitwise_or = _elementwise("bitwise_or", torch.bitwise_or, "x | y for bool and integer tensors")
bitwise_xor = _elementwise("bitwise_xor", torch.bitwise_xor, "x ^ y for bool and integer tensors")
bitwise_not = _elementwise("bitwise_not", torch.bitwise_not, "~x for bool and integer tensors")
isnan = _elementwise("isnan", torch.isnan, "Where x is NaN")
isinf = _elementwise("isinf", torch.isinf, "Where x is +-Inf")
isfinite = _elementwise("isfinite", torch.isfinite, "Where x is neither NaN nor +-Inf")


def _reduce(name: str, fn: Callable[..., torch.Tensor], input: Any, dim: Any, keepdim: bool) -> Tensor:
    if dim is None:
        out = _run(name, fn, input)
        return wrap(out.reshape((1,) * raw(input).dim()) if keepdim else out)
    dims = dim if isinstance(dim, int) else tuple(dim)
    return wrap(_run(name, fn, input, dim=dims, keepdim=keepdim))


def all(input: Any, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
    """Whether every element (along ``dim``) is nonzero, as torch.all: a bool constant."""
    return _reduce("all", torch.all, input, dim, keepdim)


def any(input: Any, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
    """Whether some element (along ``dim``) is nonzero, as torch.any: a bool constant."""
    return _reduce("any", torch.any, input, dim, keepdim)


def isclose(input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """Where ``|input - other| <= atol + rtol * |other|``, elementwise, as torch.isclose."""
    return wrap(_run("isclose", torch.isclose, input, other, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """Whether `isclose` holds everywhere, as torch.allclose: a Python bool."""
    return bool(_run("allclose", torch.allclose, input, other, rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input: Any, other: Any) -> bool:
    """Whether both have the same shape and values, as torch.equal: a Python bool."""
    return bool(_run("equal", torch.equal, input, other))
