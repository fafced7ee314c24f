"""What a record keeps of a tensor its primitive does not save: the metadata, not the values.

A record holds the `tg.Tensor` objects of its inputs and output (the graph), but only the data of
those its primitive saves (``saves=`` in `tg.primitive`). A tensor no record saved is a candidate:
each tape keeps ``{id: [tensor, references from records]}`` of them, and `sweep` releases the
data of those that nothing but the tape's records holds (the user dropped them), as the forward
goes on. `Released` then stands in for the data: VJP rules may read its shape, dtype and device;
viz shows the shape; reading its values raises.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

__all__ = ["Released", "sweep", "keep_all"]

_refcount = sys.getrefcount


class Released:
    """The metadata of a tensor whose values were freed because no VJP reads them."""

    __slots__ = ("shape", "dtype", "device")

    def __init__(self, data: torch.Tensor) -> None:
        self.shape = data.shape
        self.dtype = data.dtype
        self.device = data.device

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    def dim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    def size(self, dim: int | None = None) -> Any:
        """The shape, or the size of one dimension."""
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        """Number of elements."""
        return self.shape.numel()

    def is_floating_point(self) -> bool:
        """Whether the freed tensor held floating point values."""
        return self.dtype.is_floating_point

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            f"the values of this {tuple(self.shape)} {str(self.dtype).replace('torch.', '')} tensor were freed: "
            f"no VJP on the tape saved it (see saves= in tg.primitive); .{name} needs them"
        )

    def __repr__(self) -> str:
        return f"<released {tuple(self.shape)} {str(self.dtype).replace('torch.', '')} {self.device}>"


def sweep(candidates: dict[int, list[Any]]) -> None:
    """Release the data of the candidates that only records hold; forget them.

    A candidate's count is the number of references the tape's records hold to it (its producer's
    ``output``, and ``inputs`` and ``args`` of each record that reads it without saving it); any
    other holder, the user's variables included, keeps it. ``sys.getrefcount`` sees every strong
    reference, so a tensor the user can still reach is never released.
    """
    for key, entry in list(candidates.items()):
        t = entry[0]
        # held by: the records (entry[1]), this entry, the local `t` and getrefcount's argument
        if _refcount(t) == entry[1] + 3:
            t.data = Released(t.data)
            del candidates[key]


def keep_all(tape: Any) -> Any:
    """Make ``tape`` keep every recorded tensor's data (tools that read values afterwards: trace, blame)."""
    tape._unsaved = None
    return tape
