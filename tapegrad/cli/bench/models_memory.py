"""What one training step of the models benchmark holds (`models.model_benchmark`'s memory columns): the
heap growth (glibc's bytes in use after the forward pass, its peak, minus before), the bytes kept for
backward (distinct storages a record holds on the tape; torch's side through ``saved_tensors_hooks``)
and the aten ops it runs."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import tapegrad as tg

from . import models_torch as theirs

__all__ = ["heap_in_use", "measure_step", "tape_bytes"]


class _Count(TorchDispatchMode):
    """Counts aten ops (kernels) run while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.n += 1
        return func(*args, **(kwargs or {}))


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks")] + [
        (n, ctypes.c_size_t) for n in ("fsmblks", "uordblks", "fordblks", "keepcost")
    ]


def heap_in_use() -> int:
    """Bytes glibc's malloc has handed out and not taken back (heap plus mmap'd blocks); 0 elsewhere."""
    fn = getattr(_LIBC, "mallinfo2", None)
    if fn is None:
        return 0
    fn.restype = _MallInfo2
    info = fn()
    return int(info.uordblks + info.hblkhd)


def tape_bytes(tape: tg.Tape) -> int:
    """Distinct storages the records of ``tape`` keep for the backward pass: the inputs their primitives
    save, forward residuals, and outputs they save (what torch's ``saved_tensors_hooks`` sees; a
    parameter a record reads only for its shape, as a bias or an embedding table, is not counted)."""
    storages: dict[int, int] = {}
    for r in tape:
        held = [*r.args, *(o.data for o in r.outputs)] if r.out_version != -1 else r.args
        for d in held:
            if isinstance(d, torch.Tensor) and not isinstance(d, tg.Tensor):
                s = d.untyped_storage()
                storages[s.data_ptr()] = s.nbytes()
    return sum(storages.values())


def measure_step(c: Any, x: torch.Tensor, y: torch.Tensor, torch_side: bool) -> dict[str, int]:
    """Heap growth, bytes kept for backward and aten ops of one step of ``c``."""
    gc.collect()
    before = heap_in_use()
    with _Count() as count:
        if torch_side:
            state, kept = theirs.saved_bytes(lambda: c.forward(x, y))
        else:
            state = c.forward(x, y)
            kept = tape_bytes(state[0])
        peak = heap_in_use() - before
        c.backward(state)
        peak = max(peak, heap_in_use() - before)
        c.update()
    del state
    return {"heap_growth": peak, "kept_bytes": kept, "ops": count.n}
