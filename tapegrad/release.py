"""What a record keeps of a tensor its primitive does not save: the metadata, not the values.

`Released` stands in for the data of a recorded `tg.Tensor` that nothing but the tape holds and
that no record saved (see ``saves=`` in `tg.primitive`): VJP rules may read its shape, dtype and
device; viz shows the shape; reading its values raises.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Released"]


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
