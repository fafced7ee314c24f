"""Run a primitive's VJP with the tensors its ``saves=`` leaves out replaced by poison.

A record keeps only the tensors its primitive declares; the others reach the VJP rules as their
`tg.Tensor`, of which a rule may read the metadata only. Here those tensors hold NaN (an inverted
mask, a shifted index) instead of their values: a rule that reads one gives other gradients.
"""

from __future__ import annotations

from typing import Any

import torch
from op_specs_multi import flat_out

import tapegrad as tg


def poisoned(data: torch.Tensor) -> torch.Tensor:
    """The same shape, dtype and device, other values: NaN, an inverted mask, indices plus one."""
    if data.is_floating_point() or data.is_complex():
        return torch.full_like(data, float("nan"))
    if data.dtype == torch.bool:
        return ~data
    return data + 1


def gradients(prim: tg.Primitive, args: tuple, params: dict, g: torch.Tensor, poison: set, higher: bool) -> list:
    """The gradients of the float tensor args, replayed with the positions in ``poison`` poisoned.

    ``poison`` holds input positions and ``"output"``; ``higher`` replays under an open tape (the
    reference rules on `tg.Tensor`s) instead of the first-order fast path on raw torch.
    """
    xs = [tg.Tensor(a, requires_grad=a.is_floating_point()) if isinstance(a, torch.Tensor) else a for a in args]
    sources = [x for x in xs if isinstance(x, tg.Tensor) and x.requires_grad]
    with tg.Tape() as tape:
        result = prim(*xs, **params)
        out = flat_out(result)  # a multi-output primitive's outputs as one (a cat of reshapes: they read no values)
    for i in poison:
        targets = (result if isinstance(result, tuple) else (result,)) if i == "output" else (xs[i],)
        for target in targets:
            if isinstance(target, tg.Tensor):
                target.data = poisoned(target.data)
    if higher:
        with tg.Tape():
            grads = tape.gradient(out, sources, grad_output=tg.Tensor(g), allow_unused=True)
    else:
        grads = tape.gradient(out, sources, grad_output=tg.Tensor(g), allow_unused=True)
    return [None if gi is None else gi.data for gi in grads]


def unsaved(prim: tg.Primitive, args: tuple) -> set[Any]:
    """The tensor positions (and ``"output"``) that ``prim``'s ``saves=`` leaves out for these args."""
    if prim.saves is None:
        return set()
    kept, keep_out = prim.saves
    left = {i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and (kept is not None and i not in kept)}
    return left if keep_out else left | {"output"}


def same(a: list, b: list) -> bool:
    """Whether two gradient lists are equal, bit for bit (None only where None)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if (x is None) != (y is None):
            return False
        if x is None:
            continue
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            return False  # a rule that computed with a tg.Tensor on the raw path read a tensor not saved
        if not (x.shape == y.shape and torch.equal(x, y)):
            return False
    return True
