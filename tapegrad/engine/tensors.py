"""`tg.Tensor`: a `torch.Tensor` (`.data`) that tapes can watch; ops and operators live in ops/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

__all__ = ["Tensor", "tensor", "wrap"]


if TYPE_CHECKING:  # the methods tapegrad.torch_compat.methods attaches at import, declared for type checkers
    from ._tensor_methods import TensorMethods as _Methods
else:
    _Methods = object


class Tensor(_Methods):
    """A tensor whose operations are recorded on the open tapes that watch it.

    ``Tensor(data, requires_grad=False)`` wraps ``data`` without copying when it is a
    ``torch.Tensor``; anything else goes through ``torch.as_tensor``. Operators, comparisons and
    one method per op (``x.tanh()``, ``x.sum(dim=1)``) are attached by ``tapegrad.torch_compat.methods``;
    type checkers see them in ``tapegrad/engine/_tensor_methods.pyi``, which ``python
    scripts/gen_tensor_stub.py`` generates from them.
    """

    __slots__ = ("data", "grad", "requires_grad", "_tape", "__weakref__")
    __hash__ = object.__hash__  # identity, as torch does; __eq__ is elementwise
    __array_priority__ = 1000  # numpy scalars defer to our reflected operators

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        elif not isinstance(data, torch.Tensor):
            try:
                data = torch.as_tensor(data)
            except (TypeError, ValueError, RuntimeError) as err:
                from .errors import call_site

                raise TypeError(
                    f"Tensor: data must be a tensor, a number or a (nested) sequence of numbers, got "
                    f"{type(data).__name__} {data!r:.40} ({str(err).strip().splitlines()[0]}; called at {call_site()})"
                ) from err
        if requires_grad and not (data.is_floating_point() or data.is_complex()):
            from .errors import call_site

            raise TypeError(
                f"only floating point tensors can require gradients, got a {tuple(data.shape)} {data.dtype} "
                f"tensor (called at {call_site()})"
            )
        self.data: torch.Tensor = data
        self.grad: Tensor | None = None
        self.requires_grad: bool = requires_grad
        self._tape = None  # weak reference to the innermost tape that recorded it (tape.tape_of)

    # --- torch-like metadata -------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        """The shape, a ``torch.Size``."""
        return self.data.shape

    @property
    def dtype(self) -> torch.dtype:
        """The torch dtype."""
        return self.data.dtype

    @property
    def device(self) -> torch.device:
        """The torch device the data lives on."""
        return self.data.device

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self.data.dim()

    @property
    def is_leaf(self) -> bool:
        """True unless a tape recorded this tensor as the output of an op."""
        return self._tape is None

    def dim(self) -> int:
        """Number of dimensions."""
        return self.data.dim()

    def size(self, dim: int | None = None) -> torch.Size | int:
        """The shape, or the size of one dimension."""
        return self.data.size() if dim is None else self.data.size(dim)

    def numel(self) -> int:
        """Number of elements."""
        return self.data.numel()

    def is_floating_point(self) -> bool:
        """Whether the dtype is a floating point type."""
        return self.data.is_floating_point()

    def __len__(self) -> int:
        return len(self.data)

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        return self.data.item()

    def tolist(self) -> Any:
        """The values as (nested) Python lists."""
        return self.data.tolist()

    def numpy(self) -> Any:
        """The values as a numpy array (a copy on the CPU)."""
        return self.data.detach().cpu().numpy()

    def detach(self) -> Tensor:
        """A new tensor sharing the data, watched by no tape."""
        return Tensor(self.data)

    def __repr__(self) -> str:
        body = repr(self.data)[len("tensor(") : -1]
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}{extra})"

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __index__(self) -> int:
        return self.data.__index__()

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

    def __format__(self, spec: str) -> str:
        return format(self.data.item(), spec) if self.data.dim() == 0 else repr(self)


_new = object.__new__


def wrap(data: torch.Tensor) -> Tensor:
    """Wrap a torch tensor without the constructor's checks (the hot path of every op)."""
    t = _new(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = False
    t._tape = None
    return t


def tensor(
    data: Any,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Build a `tg.Tensor` from data (lists, numbers, numpy arrays, torch or tg tensors); copies."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, torch.Tensor):
        data = data.detach().clone().to(device=device, dtype=dtype)
    else:
        data = torch.tensor(data, dtype=dtype, device=device)
    return Tensor(data, requires_grad=requires_grad)
