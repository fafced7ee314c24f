"""Hypothesis strategies and assertions for users who test their own ops and models.

Example::

    from hypothesis import given
    import tapegrad as tg
    from tapegrad.testing import tensors, assert_gradients_match

    @given(tensors(shape=(3, 4), low=0.5, high=2.0))
    def test_my_op(x):
        assert_gradients_match(my_op, x)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ._optional import MissingExtraError
from .engine.tape import Tape
from .engine.tensors import Tensor
from .transforms.gradchecking import gradcheck

try:
    from hypothesis import strategies as st
except ModuleNotFoundError as err:  # the [testing] extra
    if err.name != "hypothesis":
        raise
    raise MissingExtraError("hypothesis", "tapegrad.testing") from None

__all__ = ["shapes", "broadcastable_shapes", "tensors", "assert_gradients_match"]


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Tensor shapes as tuples of ints."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def broadcastable_shapes(
    draw: Callable, shape: Sequence[int], min_dims: int = 0, max_dims: int = 3, max_side: int = 4
) -> tuple[int, ...]:
    """A shape that broadcasts with ``shape`` (dimensions dropped from the left or set to 1),
    possibly with extra leading dimensions."""
    shape = tuple(shape)
    ndim = draw(st.integers(min_dims, max(min_dims, max_dims)))
    out = []
    for k in range(1, ndim + 1):
        if k <= len(shape):
            out.append(draw(st.sampled_from([shape[-k], 1])))
        else:
            out.append(draw(st.integers(1, max_side)))
    return tuple(reversed(out))


@st.composite
def tensors(
    draw: Callable,
    shape: Sequence[int] | st.SearchStrategy | None = None,
    dtype: torch.dtype = torch.float64,
    low: float = -2.0,
    high: float = 2.0,
    away_from: Sequence[float] = (),
    margin: float = 1e-2,
    requires_grad: bool = False,
) -> Tensor:
    """`tg.Tensor`s with values in [low, high], at least ``margin`` away from each point in
    ``away_from`` (kinks such as 0 for relu and abs)."""
    if shape is None:
        shape = shapes()
    sizes: Sequence[int] = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
    n = 1
    for s in sizes:
        n *= s
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    if away_from:
        elements = elements.filter(lambda v: all(abs(v - k) >= margin for k in away_from))
    values = draw(st.lists(elements, min_size=n, max_size=n))
    data = torch.tensor(values, dtype=dtype).reshape(tuple(sizes))
    return Tensor(data, requires_grad=requires_grad)


def assert_gradients_match(f: Callable, *inputs: Any, order: int = 1, atol: float = 1e-5, rtol: float = 1e-3) -> None:
    """Assert the tape's gradients of ``f`` match finite differences in float64.

    With ``order=2`` the gradient of a random projection of the first derivatives is checked
    too (the VJP of the VJP). Raises `tg.GradcheckError` naming the input and index on mismatch.
    """
    gradcheck(f, inputs, atol=atol, rtol=rtol)
    if order >= 2:
        xs = [Tensor(x.data.detach().to(torch.float64)) for x in inputs]
        with Tape() as probe:
            probe.watch(*xs)
            out = f(*xs)
        gen = torch.Generator().manual_seed(0)
        v = Tensor(torch.randn(out.shape, generator=gen, dtype=torch.float64))

        def first_derivative(*args: Tensor) -> Tensor:
            with Tape() as tape:
                tape.watch(*args)
                y = f(*args)
            grads: Any = tape.gradient(y, args, grad_output=v, allow_unused=True)
            total = None
            for a, g in zip(args, grads):
                if g is not None:
                    w = Tensor(torch.linspace(0.5, 1.5, a.numel(), dtype=torch.float64).reshape(a.shape))
                    term = (g * w).sum()
                    total = term if total is None else total + term
            return total if total is not None else Tensor(torch.zeros((), dtype=torch.float64))

        gradcheck(first_derivative, xs, atol=atol, rtol=rtol)
