"""Recycled buffers for the large products of the first-order backward pass (a named fast path).

A weight gradient of a wide layer is a multi-MB tensor made fresh on every step, kept in
``.grad`` until ``zero_grad`` drops it. On the CPU, glibc hands such a buffer back to the kernel
when it trims the heap top, and the next step faults every page of it in again (width 2048,
batch 10: 8,000 page faults a step, slower than torch). `mm` writes the product into a buffer
of an earlier call that nothing holds any more (no Python reference but this pool's, no other
tensor on its storage), so the memory stays mapped and no user-visible tensor is overwritten.
The pool is per thread; a graph capture (torch.jit's tracer, make_fx: tg.trace's inductor step, Dynamo) and
other devices get a fresh product.
"""

from __future__ import annotations

import sys
import threading

import torch

from ..engine.capture import capturing

__all__ = ["mm"]

_MIN_BYTES = 128 * 1024  # glibc's default mmap threshold: smaller buffers stay on the heap anyway
_PER_SHAPE = 4  # buffers kept per (shape, dtype): one per layer of that shape, for deep stacks of equal layers
_LOCAL = threading.local()
_use_count = getattr(torch._C, "_storage_Use_Count", None)


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for 2-D CPU tensors, into a recycled buffer when the product is large."""
    rows, cols = a.shape[0], b.shape[1]
    if rows * cols * a.element_size() < _MIN_BYTES or capturing():  # a capture would bake a pooled buffer in
        return torch.mm(a, b)  # what `@` runs for 2-D operands, without matmul's dispatch
    if a.device.type != "cpu" or a.dtype != b.dtype or _use_count is None:
        return a @ b
    pool: dict[tuple[int, int, torch.dtype], list[torch.Tensor]] | None = getattr(_LOCAL, "pool", None)
    if pool is None:
        pool = _LOCAL.pool = {}
    key = (rows, cols, a.dtype)
    buffers = pool.get(key)
    if buffers is None:
        buffers = pool[key] = []
    for buf in buffers:
        # free: referenced by this list, the loop variable and getrefcount's argument only, and
        # its storage by it alone (and the temporary storage object of this check)
        if sys.getrefcount(buf) == 3 and _use_count(buf.untyped_storage()._cdata) == 2:
            return torch.mm(a, b, out=buf)
    out = a @ b
    if len(buffers) < _PER_SHAPE:
        buffers.append(out)
    return out
