"""broadcast_to and sum_to, each the other's VJP: the two primitives every broadcasting op uses."""

from __future__ import annotations

from ..primitive import primitive

__all__ = ["broadcast_to", "sum_to"]

broadcast_to = primitive(
    "broadcast_to",
    lambda x, shape: x.expand(shape),
    [lambda g, out, x, shape: sum_to(g, shape=x.shape)],
    "broadcast_to(x, shape): x repeated along new or size-1 dimensions (torch.broadcast_to).",
)
sum_to = primitive(
    "sum_to",
    lambda x, shape: x.sum_to_size(shape),
    [lambda g, out, x, shape: broadcast_to(g, shape=x.shape)],
    "sum_to(x, shape): sum x down to a shape it broadcasts from (torch.Tensor.sum_to_size).",
)
