"""Moving and casting a module's parameters and buffers in place: ``to``, ``cuda``, ``half``, ..."""

from __future__ import annotations

from typing import Any, TypeVar

import torch

from tapegrad.engine.tensors import Tensor

__all__ = ["Moves", "parse_to"]

_M = TypeVar("_M", bound="Moves")


def parse_to(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[torch.device | None, torch.dtype | None, bool]:
    """(device, dtype, non_blocking) from torch's ``to(device, dtype)`` / ``to(dtype)`` / ``to(tensor)`` forms."""
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    non_blocking = bool(kwargs.pop("non_blocking", False))
    kwargs.pop("copy", None)
    if kwargs:
        raise TypeError(f"Module.to: unexpected keyword argument(s) {', '.join(kwargs)}")
    for a in args:
        if isinstance(a, torch.dtype):
            dtype = a
        elif isinstance(a, (torch.Tensor, Tensor)):
            device, dtype = a.device, a.dtype
        elif isinstance(a, bool):
            non_blocking = a
        elif isinstance(a, (str, int, torch.device)):
            device = a
        else:
            raise TypeError(f"Module.to: expected a device, a dtype or a tensor, got {type(a).__name__}")
    if dtype is not None and not (dtype.is_floating_point or dtype.is_complex):
        raise TypeError(f"Module.to: nn.Module.to only accepts floating point or complex dtypes, but got {dtype}")
    return (None if device is None else torch.device(device)), dtype, non_blocking


class Moves:
    """The device and dtype methods of `nn.Module` (mixed into it): every parameter and buffer is
    moved or cast where it is, so optimizers and tapes keep their references."""

    def _apply(self: _M, fn: Any) -> _M:
        """Run ``fn`` on the torch data of every parameter, gradient and buffer, in place; returns self."""
        for m in self.modules():  # type: ignore[attr-defined]
            for p in m._parameters.values():
                if p is None:
                    continue
                p.data = fn(p.data)
                if p.grad is not None:
                    p.grad = Tensor(fn(p.grad.data if isinstance(p.grad, Tensor) else p.grad))
            for name, b in m._buffers.items():
                if isinstance(b, Tensor):
                    b.data = fn(b.data)
                elif b is not None:
                    m._buffers[name] = fn(b)
        return self

    def to(self: _M, *args: Any, **kwargs: Any) -> _M:
        """Move and/or cast the parameters and buffers in place, as torch's ``Module.to(device, dtype)``
        (a dtype applies to the floating point ones only); returns self."""
        device, dtype, non_blocking = parse_to(args, dict(kwargs))

        def convert(t: torch.Tensor) -> torch.Tensor:
            cast = dtype if dtype is not None and (t.is_floating_point() or t.is_complex()) else None
            return t.to(device=device, dtype=cast, non_blocking=non_blocking)

        return self._apply(convert)

    def cuda(self: _M, device: Any = None) -> _M:
        """Move parameters and buffers to a CUDA device (the current one by default); returns self."""
        where = "cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else device
        return self.to(torch.device(where))

    def cpu(self: _M) -> _M:
        """Move parameters and buffers to the CPU; returns self."""
        return self.to(torch.device("cpu"))

    def double(self: _M) -> _M:
        """Cast the floating point parameters and buffers to float64; returns self."""
        return self.to(torch.float64)

    def float(self: _M) -> _M:
        """Cast the floating point parameters and buffers to float32; returns self."""
        return self.to(torch.float32)

    def half(self: _M) -> _M:
        """Cast the floating point parameters and buffers to float16; returns self."""
        return self.to(torch.float16)

    def bfloat16(self: _M) -> _M:
        """Cast the floating point parameters and buffers to bfloat16; returns self."""
        return self.to(torch.bfloat16)
