"""Attach the ops to `tg.Tensor` as methods and operators, with torch's names and signatures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import ops
from .._validate import named
from ..engine.errors import TapeError, call_site
from ..engine.hooks import register_post_accumulate_grad_hook
from ..engine.primitives import Primitive
from ..engine.tensors import Tensor, wrap
from ..ops._public import takes_dim, with_axis


def _sizes(shape: tuple) -> tuple:
    """Accept both ``x.reshape(2, 3)`` and ``x.reshape((2, 3))``."""
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else tuple(shape)


def reshape(self: Tensor, *shape: Any) -> Tensor:
    """The tensor with a new shape (one dimension may be -1)."""
    return ops.reshape(self, _sizes(shape))


def expand(self: Tensor, *shape: Any) -> Tensor:
    """The tensor broadcast to ``shape``; -1 keeps a dimension (torch.Tensor.expand)."""
    sizes = _sizes(shape)
    lead = len(sizes) - self.ndim
    full = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return self if full == tuple(self.shape) else ops.broadcast_to(self, shape=full)


def sum_to_size(self: Tensor, *shape: Any) -> Tensor:
    """The tensor summed down to ``shape`` (torch.Tensor.sum_to_size)."""
    sizes = _sizes(shape)
    return self if tuple(sizes) == tuple(self.shape) else ops.sum_to(self, shape=sizes)


def t(self: Tensor) -> Tensor:
    """The transpose of a matrix (a vector unchanged)."""
    return self if self.ndim < 2 else ops.transpose(self, 0, 1)


def to(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """The tensor on another device or with another dtype; float-to-float casts are recorded."""
    target = torch.empty(0, dtype=self.dtype, device=self.device).to(*args, **kwargs)
    if target.dtype == self.dtype and target.device == self.device:
        return self
    if self.data.is_floating_point() and target.dtype.is_floating_point:
        return ops.cast(self, dtype=target.dtype, device=target.device)
    return wrap(self.data.to(device=target.device, dtype=target.dtype))


def backward(self: Tensor, grad_output: Tensor | None = None) -> None:
    """Accumulate this tensor's gradient into ``.grad`` of the leaves of the tape that recorded it."""
    if self._tape is None:
        raise TapeError(
            "backward: this tensor was not recorded on any tape; open `with tg.Tape():` around the "
            f"forward pass (and make the parameters require grad); called at {call_site()}"
        )
    tape = self._tape()
    if tape is None:
        raise TapeError(
            "backward: the tape that recorded this tensor was freed (nothing held it, and another tape "
            "was closed since); keep it with `with tg.Tape() as tape:` and call `tape.backward(loss)`; "
            f"called at {call_site()}"
        )
    tape.backward(self, grad_output)


def _swap(fn: Callable[[Any, Any], Any]) -> Callable[[Tensor, Any], Any]:
    def reflected(self: Tensor, other: Any) -> Any:
        return fn(other, self)

    reflected.__doc__ = f"{fn.__name__} with the operands swapped."
    return reflected


_METHODS = {
    # operators
    "__add__": ops.add, "__radd__": _swap(ops.add), "__sub__": ops.sub, "__rsub__": _swap(ops.sub),
    "__mul__": ops.mul, "__rmul__": _swap(ops.mul), "__truediv__": ops.div,
    "__rtruediv__": _swap(ops.div), "__pow__": ops.pow, "__rpow__": _swap(ops.pow),
    "__matmul__": ops.matmul, "__rmatmul__": _swap(ops.matmul), "__neg__": ops.neg,
    "__getitem__": ops.index, "__lt__": ops.lt, "__le__": ops.le, "__gt__": ops.gt,
    "__ge__": ops.ge, "__eq__": ops.eq, "__ne__": ops.ne, "__abs__": ops.abs,
    "__setitem__": ops.assign.setitem,
    # methods whose signature differs from the op's (the others are attached below)
    "where": lambda self, cond, other: ops.where(cond, self, other),
    "reshape": reshape, "expand": expand, "broadcast_to": expand,
    "sum_to_size": sum_to_size, "t": t, "to": to, "backward": backward,
    "register_post_accumulate_grad_hook": register_post_accumulate_grad_hook,
    "permute": lambda self, *dims: ops.permute(self, _sizes(dims)),
    "float": lambda self: to(self, torch.float32), "double": lambda self: to(self, torch.float64),
    "cpu": lambda self: to(self, "cpu"), "cuda": lambda self, device=None: to(self, device or "cuda"),
    # issue 23 (the ops helper's block): operators on ints and bools, dtype conversions
    "__mod__": ops.remainder, "__rmod__": _swap(ops.remainder), "__floordiv__": ops.floor_divide,
    "__rfloordiv__": _swap(ops.floor_divide), "__and__": ops.bitwise_and, "__rand__": _swap(ops.bitwise_and),
    "__or__": ops.bitwise_or, "__ror__": _swap(ops.bitwise_or), "__xor__": ops.bitwise_xor,
    "__rxor__": _swap(ops.bitwise_xor), "__invert__": ops.bitwise_not,
    "type": lambda self, dtype=None: _type(self, dtype), "half": lambda self: to(self, torch.float16),
    "bfloat16": lambda self: to(self, torch.bfloat16), "int": lambda self: to(self, torch.int32),
    "long": lambda self: to(self, torch.int64), "short": lambda self: to(self, torch.int16),
    "bool": lambda self: to(self, torch.bool), "byte": lambda self: to(self, torch.uint8),
    "view": lambda self, *shape: _view(self, *shape), "contiguous": lambda self: ops.contiguous(self),
    "T": property(lambda self: ops.permute(self, tuple(reversed(range(self.ndim)))), doc="Dimensions reversed."),
    "mT": property(lambda self: ops.transpose(self, -2, -1), doc="The last two dimensions swapped."),
}  # fmt: skip


def _type(self: Tensor, dtype: Any) -> Any:
    if dtype is None:  # torch's x.type(): the legacy type name, as 'torch.FloatTensor'
        return self.data.type()
    return to(self, torch.empty(0, dtype=self.dtype).type(dtype).dtype)  # a dtype or a name ('torch.IntTensor')


def _view(self: Tensor, *shape: Any) -> Tensor:
    if len(shape) == 1 and isinstance(shape[0], torch.dtype):  # x.view(torch.int32): the bits reinterpreted
        return wrap(self.data.view(shape[0]))
    return reshape(self, *shape)


_LAMBDA_DOCS = {
    "where": "Elements of this tensor where ``cond`` holds, else of ``other`` (torch.Tensor.where).",
    "permute": "The tensor with its dimensions reordered (torch.Tensor.permute).",
    "float": "The tensor as float32 (a recorded cast when it is float).",
    "double": "The tensor as float64 (a recorded cast when it is float).",
    "cpu": "The tensor on the CPU.",
    "cuda": "The tensor on a CUDA device (``cuda`` by default).",
    "type": "The legacy type name ('torch.FloatTensor'), or with a dtype the tensor converted to it.",
    "half": "The tensor as float16 (a recorded cast when it is float).",
    "bfloat16": "The tensor as bfloat16 (a recorded cast when it is float).",
    "int": "The tensor as int32 (a constant).",
    "long": "The tensor as int64 (a constant).",
    "short": "The tensor as int16 (a constant).",
    "bool": "The tensor as bool (a constant).",
    "byte": "The tensor as uint8 (a constant).",
    "view": "The tensor with a new shape (as reshape), or with a dtype its bits reinterpreted (a constant).",
    "contiguous": "The tensor laid out contiguously in memory (recorded only when it was not).",
}
for _name, _doc in _LAMBDA_DOCS.items():
    _METHODS[_name].__doc__ = _doc

for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
# every other op whose name torch.Tensor has as a method: x.exp(), x.sum(dim=1), x.clamp(0, 1)
# (a plain function's argument errors name the method, as tapegrad.X's do; primitives name themselves)
for _name in ops.__all__:
    if _name not in _METHODS and hasattr(torch.Tensor, _name):
        _op = getattr(ops, _name)
        _method = with_axis(_op) if takes_dim(_op) else _op  # x.sum(axis=1), as torch
        setattr(Tensor, _name, _method if isinstance(_op, Primitive) else named(_method, _name))
