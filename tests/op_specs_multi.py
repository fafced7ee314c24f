"""Input specs of the multi-output primitives (split_with_sizes, unbind; lstm_layer is in op_specs_fused),
and `flat_out`, which the registry gates use to treat a multi-output primitive's outputs as one tensor."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from op_specs import Case, spec
from strategies import floats, small_shapes

import tapegrad as tg


def flat_out(out: Any) -> Any:
    """A primitive's result as one tensor: a multi-output primitive's outputs flattened and joined, recorded
    (tg.Tensors: reshape and cat, whose rules give each output its part of the cotangent) or in torch."""
    if not isinstance(out, tuple):
        return out
    if any(isinstance(o, tg.Tensor) for o in out):
        return tg.cat([o.reshape(-1) for o in out])
    return torch.cat([o.reshape(-1) for o in out])


@spec("split_with_sizes")
def _split_with_sizes(draw):
    shape = draw(small_shapes(min_dims=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    size, sizes = shape[dim], []
    for _ in range(draw(st.integers(0, 2))):  # a few pieces (an empty one too), then the rest
        sizes.append(draw(st.integers(0, size - sum(sizes))))
    sizes.append(size - sum(sizes))
    return Case((draw(floats(shape)),), {"sizes": tuple(sizes), "dim": dim})


@spec("unbind")
def _unbind(draw):
    shape = draw(small_shapes(min_dims=1))
    return Case((draw(floats(shape)),), {"dim": draw(st.integers(-len(shape), len(shape) - 1))})
