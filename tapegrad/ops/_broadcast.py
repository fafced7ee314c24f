"""The primitives every broadcasting op uses: broadcast_to and sum_to (each the other's VJP), and
cast (its own VJP, back to the input's dtype), which type promotion records."""

from __future__ import annotations

from ..engine.primitives import Primitive, primitive

__all__ = ["broadcast_to", "sum_to", "cast"]

broadcast_to: Primitive = primitive(
    "broadcast_to",
    lambda x, shape: x.expand(shape),
    [lambda g, out, x, shape: sum_to(g, shape=x.shape)],
    "broadcast_to(x, shape): x repeated along new or size-1 dimensions (torch.broadcast_to).",
    saves=(),
)
sum_to: Primitive = primitive(
    "sum_to",
    lambda x, shape: x.sum_to_size(shape),
    [lambda g, out, x, shape: broadcast_to(g, shape=x.shape)],
    "sum_to(x, shape): sum x down to a shape it broadcasts from (torch.Tensor.sum_to_size).",
    saves=(),
)
cast: Primitive = primitive(
    "cast",
    lambda x, dtype=None, device=None: x.to(device=device, dtype=dtype),
    [lambda g, out, x, dtype=None, device=None: cast(g, dtype=x.dtype, device=x.device)],
    "cast(x, dtype=None, device=None): x converted to another float dtype or device.",
    saves=(),
)
