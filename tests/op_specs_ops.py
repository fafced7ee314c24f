"""Input specs for issue 23's ops: more elementwise math, the piecewise-constant ops, rearranging,
scatter, products and running reductions. Imported by ``op_specs`` (which owns ``SPECS``).

Piecewise-constant ops draw values off their jumps (finite differences then see the zero
gradient); products include exact zeros (the other branch of their VJPs).
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st
from op_specs import Case, spec
from strategies import F64, distinct, floats, signed, small_shapes


def _unary(name: str, low: float, high: float) -> None:
    @spec(name)
    def _case(draw):
        return Case((draw(floats(draw(small_shapes()), low, high)),))


for _name in ("atan", "sinh", "cosh", "asinh"):
    _unary(_name, -2.0, 2.0)
for _name in ("asin", "acos", "atanh"):
    _unary(_name, -0.8, 0.8)
_unary("tan", -1.2, 1.2)
_unary("acosh", 1.2, 3.0)
_unary("rsqrt", 0.3, 3.0)
_unary("log2", 0.2, 3.0)
_unary("log10", 0.2, 3.0)
_unary("contiguous", -2.0, 2.0)


@st.composite
def off_grid(draw, shape, step: float = 1.0, low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    """Values n * step + u * step with u in [low, high]: away from the jumps of a rounding op."""
    whole = torch.tensor(draw(st.lists(st.integers(-2, 2), min_size=math.prod(shape), max_size=math.prod(shape))))
    return (whole.to(F64).reshape(shape) + draw(floats(shape, low, high))) * step


@spec("sign")
def _sign(draw):
    return Case((draw(signed(draw(small_shapes()), 0.05, 2.0)),))


for _name in ("floor", "ceil", "trunc"):

    @spec(_name)
    def _rounding(draw):
        return Case((draw(off_grid(draw(small_shapes()))),))


@spec("round")
def _round(draw):
    decimals = draw(st.sampled_from([0, 1, -1]))
    x = draw(off_grid(draw(small_shapes()), 10.0**-decimals, -0.4, 0.4))
    return Case((x,), {"decimals": decimals} if decimals else {})


for _name in ("floor_divide", "trunc_divide", "fmod", "remainder"):

    @spec(_name)
    def _quotient(draw):
        """(x, y) with x / y off the integers: rounded quotients keep still under finite differences.
        A number divisor is the tensor divisor's first element, so x is built from that number."""
        shape = draw(small_shapes())
        y = draw(signed(shape, 0.3, 2.0))
        if draw(st.sampled_from(["tensors", "number"])) == "number" and y.numel():
            number = float(y.reshape(-1)[0])
            return Case((draw(off_grid(shape)) * number, number))
        return Case((draw(off_grid(shape)) * y, y))


@spec("atan2")
def _atan2(draw):
    shape = draw(small_shapes())
    return Case((draw(signed(shape, 0.3, 2.0)), draw(floats(shape))))  # y off 0: no branch cut


@spec("copysign")
def _copysign(draw):
    shape = draw(small_shapes())
    return Case((draw(signed(shape, 0.1, 2.0)), draw(signed(shape, 0.1, 2.0))))


@spec("lerp")
def _lerp(draw):
    shape = draw(small_shapes())
    weight = draw(st.one_of(st.sampled_from([0.25, -0.5]), floats(shape)))
    return Case((draw(floats(shape)), draw(floats(shape)), weight))


def _some_dims(draw, ndim: int) -> tuple[int, ...]:
    return tuple(draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim, unique_by=lambda d: d % ndim)))


@spec("flip")
def _flip(draw):
    shape = draw(small_shapes(min_dims=1))
    return Case((draw(floats(shape)),), {"dims": _some_dims(draw, len(shape))})


@spec("roll")
def _roll(draw):
    shape = draw(small_shapes(min_dims=1))
    dims = draw(st.one_of(st.just(()), st.just(None)))
    dims = _some_dims(draw, len(shape)) if dims is None else dims
    shifts = tuple(draw(st.integers(-4, 4)) for _ in range(max(len(dims), 1)))
    return Case((draw(floats(shape)),), {"shifts": shifts, "dims": dims})


for _name in ("tril", "triu"):

    @spec(_name)
    def _triangle(draw):
        shape = draw(small_shapes(min_dims=2))
        return Case((draw(floats(shape)),), {"diagonal": draw(st.integers(-2, 2))})


@st.composite
def _diagonal_geometry(draw):
    shape = draw(small_shapes(min_dims=2))
    dim1, dim2 = draw(st.permutations(range(len(shape))))[:2]
    offset = draw(st.integers(-2, 2))
    return shape, {"offset": offset, "dim1": dim1, "dim2": dim2}


@spec("diagonal")
def _diagonal(draw):
    shape, params = draw(_diagonal_geometry())
    return Case((draw(floats(shape)),), params)


@spec("diagonal_scatter")
def _diagonal_scatter(draw):
    shape, params = draw(_diagonal_geometry())
    picked = torch.empty(shape).diagonal(**params).shape
    return Case((draw(floats(tuple(picked))),), {"shape": shape, **params})


@st.composite
def _unfold_geometry(draw):
    shape = draw(small_shapes(min_dims=1, max_side=4))
    dimension = draw(st.integers(-len(shape), len(shape) - 1))
    size = draw(st.integers(1, shape[dimension]))
    return shape, {"dimension": dimension, "size": size, "step": draw(st.integers(1, 2))}


@spec("unfold")
def _unfold(draw):
    shape, params = draw(_unfold_geometry())
    return Case((draw(floats(shape)),), params)


@spec("unfold_backward")
def _unfold_backward(draw):
    shape, params = draw(_unfold_geometry())
    windows = torch.empty(shape).unfold(params["dimension"], params["size"], params["step"]).shape
    return Case((draw(floats(tuple(windows))),), {"shape": shape, **params})


@st.composite
def _scatter_geometry(draw, unique: bool):
    """(x shape, dim, index): index no larger than x; unique positions along dim when ``unique``."""
    shape = draw(small_shapes(min_dims=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    sizes = [draw(st.integers(1, s)) for s in shape]
    gen = torch.Generator().manual_seed(draw(st.integers(0, 99)))
    if unique:
        index = torch.rand(shape, generator=gen).argsort(dim)  # a permutation along dim: no repeats
    else:
        index = torch.randint(0, shape[dim], shape, generator=gen)
    return shape, dim, index[tuple(slice(0, n) for n in sizes)]


@spec("scatter")
def _scatter(draw):
    shape, dim, index = draw(_scatter_geometry(unique=True))
    src = draw(st.one_of(st.just(1.5), floats(tuple(index.shape))))
    return Case((draw(floats(shape)), src), {"dim": dim, "index": index})


@spec("scatter_add")
def _scatter_add(draw):
    shape, dim, index = draw(_scatter_geometry(unique=False))
    return Case((draw(floats(shape)), draw(floats(tuple(index.shape)))), {"dim": dim, "index": index})


@st.composite
def with_zeros(draw, shape):
    """Magnitudes in [0.2, 2] (the quotient rule is ill-conditioned near 0, in torch too), some of them
    exactly 0 (the products' second VJP branch)."""
    x = draw(signed(shape, 0.2, 2.0))
    n = math.prod(shape)
    zeros = torch.tensor(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))).reshape(shape) == 0
    return torch.where(zeros, 0.0, x) if draw(st.booleans()) else x


@spec("prod")
def _prod(draw):
    shape = draw(small_shapes())
    x = draw(with_zeros(shape))
    if draw(st.booleans()) or not shape:
        return Case((x,))
    return Case((x,), {"dim": draw(st.integers(-len(shape), len(shape) - 1)), "keepdim": draw(st.booleans())})


def _scan(name: str, values) -> None:
    @spec(name)
    def _case(draw):
        shape = draw(small_shapes())
        dim = draw(st.integers(-len(shape), len(shape) - 1)) if shape else draw(st.sampled_from([0, -1]))
        return Case((draw(values(shape)),), {"dim": dim})


_scan("cumsum", floats)
_scan("cumprod", with_zeros)
_scan("cummax", distinct)
_scan("cummin", distinct)


_EQUATIONS = ["ij,jk->ik", "bij,bjk->bik", "ij->j", "ij->", "i,j->ij", "ij,j->i", "abc,c->ba", "ij,k->k", "ijk->kij"]


@spec("einsum")  # explicit subscripts, distinct within an operand (the front end makes them so)
def _einsum(draw):
    equation = draw(st.sampled_from(_EQUATIONS))
    inputs = equation.split("->")[0].split(",")
    sizes = {c: draw(st.integers(1, 3)) for c in set("".join(inputs))}
    shapes = []
    for s in inputs:  # a letter shared with another operand may be 1 here: torch broadcasts it
        shared = [c for c in s if sum(c in t for t in inputs) > 1]
        ones = set(draw(st.lists(st.sampled_from(shared), max_size=1))) if shared and len(inputs) > 1 else set()
        shapes.append(tuple(1 if c in ones else sizes[c] for c in s))
    return Case(tuple(draw(floats(shape)) for shape in shapes), {"equation": equation})


@st.composite
def _narrow_geometry(draw):
    shape = draw(small_shapes(min_dims=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    start = draw(st.integers(0, shape[dim] - 1))
    return shape, {"dim": dim, "start": start}, draw(st.integers(1, shape[dim] - start))


@spec("narrow")
def _narrow(draw):
    shape, params, length = draw(_narrow_geometry())
    return Case((draw(floats(shape)),), {**params, "length": length})


@spec("narrow_backward")
def _narrow_backward(draw):
    shape, params, length = draw(_narrow_geometry())
    picked = list(shape)
    picked[params["dim"]] = length
    return Case((draw(floats(tuple(picked))),), {"shape": shape, **params})


@st.composite
def _select_geometry(draw):
    shape = draw(small_shapes(min_dims=1))
    dim = draw(st.integers(0, len(shape) - 1))
    picks = draw(st.lists(st.integers(0, shape[dim] - 1), min_size=1, max_size=4))  # repeats add up
    return shape, dim, torch.tensor(picks)


@spec("index_select")
def _index_select(draw):
    shape, dim, index = draw(_select_geometry())
    return Case((draw(floats(shape)),), {"dim": dim, "index": index})


@spec("index_select_backward")
def _index_select_backward(draw):
    shape, dim, index = draw(_select_geometry())
    picked = list(shape)
    picked[dim] = len(index)
    return Case((draw(floats(tuple(picked))),), {"dim": dim, "index": index, "shape": shape})
