"""`Record`, one op on a tape as plain data, and the recording of a multi-output primitive's call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .errors import SiteKey, format_site
from .op_errors import check_finite
from .state import Scope
from .tensors import Tensor

if TYPE_CHECKING:
    from .primitives import Primitive

__all__ = ["FLOATING", "Record", "record_outputs"]

_new = object.__new__


class Record:
    """One op on a tape, as plain data: what ran, on what, with which params, where.

    ``output`` is the op's `tg.Tensor`, or for a primitive declared ``multi_output=True`` the tuple of
    its outputs (one record for all of them); ``outputs`` is a tuple either way.
    """

    __slots__ = ("primitive", "inputs", "output", "params", "scope", "versions", "out_version", "site", "args")

    # Made only by `Tape.record` (the one writer of records), slot by slot, without an __init__ call.
    primitive: Primitive
    inputs: tuple[Any, ...]  # tg.Tensors, Python numbers, non-float torch tensors
    output: Any  # a Tensor, or a tuple of Tensors (a multi-output primitive)
    params: dict[str, Any]
    scope: Scope | None  # the module scope the op ran in
    # torch _version of each input's data (None for an input that is not a tg.Tensor, -1 for a tensor the
    # primitive does not save), and the output's (-1 when it is not saved; a tuple, one per output, for a
    # multi-output record that saves its outputs)
    versions: Sequence[int | None]
    out_version: Any
    site: SiteKey | None  # (code, instruction offset) of the user's call (`errors.site_line`)
    # what VJP rules get on the fast path, in input order: the raw torch data the forward saw, or the
    # tg.Tensor itself (metadata only) for an input the primitive does not save
    args: list[Any]

    @property
    def outputs(self) -> tuple[Tensor, ...]:
        """The op's outputs as a tuple: one tensor, or each output of a multi-output primitive."""
        out = self.output
        return out if out.__class__ is tuple else (out,)

    @property
    def call_site(self) -> str:
        """Where the user's code ran this op, as 'file.py:12 in fn'."""
        return format_site(self.site)

    def __repr__(self) -> str:
        shapes = [tuple(a.shape) if isinstance(a, Tensor) else a for a in self.inputs]
        scope = f" in {self.scope!r}" if self.scope is not None else ""
        outs = ", ".join(str(tuple(o.shape)) for o in self.outputs)
        return f"<Record {self.primitive.name}{shapes} -> {outs}{scope}>"


# the floating dtypes: ``dtype in FLOATING`` is ``is_floating_point()`` without a call (once per recorded output)
FLOATING = frozenset(d for d in vars(torch).values() if isinstance(d, torch.dtype) and d.is_floating_point)


def record_outputs(
    prim: Any, args: tuple, raw: list, data: Any, params: dict, extra: Any, requires: bool, state: Any, tapes: Any
) -> tuple:
    """`Primitive.__call__`'s end for a multi-output primitive: one `tg.Tensor` per output, one record for all
    (``state``: the thread's; ``tapes``: its open tapes, None when grad mode is off)."""
    if not isinstance(data, (tuple, list)) or not all(isinstance(d, torch.Tensor) for d in data):
        raise TypeError(
            f"{prim.name}: a multi_output primitive's forward must return a tuple of torch tensors, got "
            f"{type(data).__name__} {data!r:.60}"
        )
    grads = requires and tapes is not None
    outs = []
    for d in data:
        out = _new(Tensor)
        out.data, out.grad, out._tape, out.requires_grad = d, None, None, grads and d.dtype in FLOATING
        outs.append(out)
    if tapes:
        # the record's tuple is not the one returned: holding the user's tuple would hide, from the release
        # sweep's reference counts, that the user can still reach each output
        tapes[-1].record(prim, args, raw, tuple(outs), params, state, requires)
        if extra is not None:
            raw.extend(extra)
    if state.anomaly:
        for out in outs:
            check_finite(out.data, prim.name, "forward")
    return tuple(outs)
