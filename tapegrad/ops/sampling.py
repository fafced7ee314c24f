"""Drawing from distributions: integer samples, never recorded (no gradient flows through a draw)."""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import ShapeError, call_site, describe_tensor
from ..engine.tensors import Tensor, wrap
from ._operands import raw

__all__ = ["multinomial"]


def multinomial(
    input: Any, num_samples: int, replacement: bool = False, *, generator: torch.Generator | None = None
) -> Tensor:
    """Indices drawn from the rows of ``input`` (non-negative weights, (C,) or (N, C)), as torch.multinomial.

    Returns an int64 `tg.Tensor` of shape (num_samples,) or (N, num_samples); not recorded.
    """
    data = raw(input)
    if not isinstance(data, torch.Tensor):
        data = torch.as_tensor(data)
    try:
        return wrap(torch.multinomial(data, num_samples, replacement, generator=generator))
    except RuntimeError as err:
        raise ShapeError(
            f"multinomial: cannot draw {num_samples} samples (replacement={replacement}) from "
            f"{describe_tensor(data)} weights (called at {call_site()}): {str(err).splitlines()[0]}"
        ) from err
