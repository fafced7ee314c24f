"""Hypothesis strategies shared by the core's tests: raw float64 torch tensors kept away from kinks.

The tests draw raw torch data and wrap it themselves, so that the same draw feeds tapegrad and the
torch.autograd reference.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from hypothesis import strategies as st

from tapegrad.testing import shapes

F64 = torch.float64

# CI runs the counts written in the tests; TAPEGRAD_EXAMPLES_SCALE=10 runs ten times as many.
_SCALE = float(os.environ.get("TAPEGRAD_EXAMPLES_SCALE", "1"))


def examples(n: int) -> int:
    """``n`` hypothesis examples, scaled by the TAPEGRAD_EXAMPLES_SCALE environment variable."""
    return max(1, round(n * _SCALE))


def small_shapes(min_dims: int = 0, max_dims: int = 3, max_side: int = 3) -> st.SearchStrategy:
    """Shapes of up to 3 dimensions of side up to 3 (the finite differences stay cheap)."""
    return shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


@st.composite
def floats(draw, shape: Sequence[int], low: float = -2.0, high: float = 2.0) -> torch.Tensor:
    """A float64 tensor of ``shape`` with values in [low, high]."""
    n = math.prod(shape)
    values = draw(st.lists(st.floats(low, high, allow_nan=False, width=64), min_size=n, max_size=n))
    return torch.tensor(values, dtype=F64).reshape(tuple(shape))


@st.composite
def signed(draw, shape: Sequence[int], low: float = 0.2, high: float = 2.0) -> torch.Tensor:
    """A float64 tensor whose magnitudes lie in [low, high], either sign: away from the kink at 0."""
    magnitude = draw(floats(shape, low, high))
    n = math.prod(shape)
    signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n))
    return magnitude * torch.tensor(signs, dtype=F64).reshape(tuple(shape))


@st.composite
def distinct(draw, shape: Sequence[int], gap: float = 0.1) -> torch.Tensor:
    """A float64 tensor whose values differ pairwise by at least ``gap`` (no ties for max)."""
    n = math.prod(shape)
    order = draw(st.permutations(range(n)))
    jitter = draw(floats((n,), 0.0, gap / 2))
    values = (torch.tensor(order, dtype=F64) - n / 2) * (2 * gap) + jitter
    return values.reshape(tuple(shape))


@st.composite
def away_from(draw, shape: Sequence[int], points: Sequence[float], low=-2.0, high=2.0, margin=0.05):
    """Values in [low, high] (give or take 2 * margin) at least ``margin`` away from each of ``points``."""
    x = draw(floats(shape, low, high))
    for p in points:
        near = (x - p).abs() < margin
        x = torch.where(near, x + 2 * margin * torch.where(x >= p, 1.0, -1.0).to(F64), x)
    return x


@st.composite
def broadcast_pair(draw, max_dims: int = 3, max_side: int = 3) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(big, small): ``small`` broadcasts to ``big`` (size-1 or missing leading dimensions)."""
    big = draw(small_shapes(max_dims=max_dims, max_side=max_side))
    small = []
    ndim = draw(st.integers(0, len(big)))
    for k in range(1, ndim + 1):
        small.append(draw(st.sampled_from([big[-k], 1])))
    return big, tuple(reversed(small))


def upstream(shape: Sequence[int], seed: int) -> torch.Tensor:
    """A random upstream gradient of ``shape`` (normal, float64) from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=gen, dtype=F64)


seeds = st.integers(0, 2**31 - 1)
