"""Input specs for the ops torch users reach for (extrema, stats, activations, index ops, conv, pooling).

Imported by ``op_specs`` (which owns ``SPECS``); the same rules hold: float tensors in ``args`` are
the differentiable inputs, values stay away from kinks and ties.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st
from op_specs import Case, _reduce_dim, spec
from strategies import F64, away_from, distinct, floats, signed, small_shapes


def _reduce_case(draw, values, allow_tuple=True):
    shape = draw(small_shapes())
    dim = _reduce_dim(draw, len(shape), allow_tuple=allow_tuple)
    params = {} if dim is None else {"dim": dim, "keepdim": draw(st.booleans())}
    return Case((draw(values(shape)),), params)


@spec("min")  # amin: ties share the gradient, so the values are distinct
def _amin(draw):
    return _reduce_case(draw, distinct, allow_tuple=False)


def _by_index(name: str) -> None:
    @spec(name)
    def _case(draw):
        shape = draw(small_shapes())
        dim = _reduce_dim(draw, len(shape), allow_none=False, allow_tuple=False)
        return Case((draw(distinct(shape)),), {"dim": dim, "keepdim": draw(st.booleans())})


_by_index("max_dim")
_by_index("min_dim")


@st.composite
def _distinct_magnitudes(draw, shape):
    """Values whose magnitudes differ pairwise (no ties for the inf-norm), either sign."""
    n = math.prod(shape)
    order = torch.tensor(draw(st.permutations(range(n))), dtype=F64)
    signs = torch.tensor(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n)), dtype=F64)
    return ((order * 0.2 + 0.3) * signs).reshape(tuple(shape))


@spec("var")
def _var(draw):
    case = _reduce_case(draw, floats)
    x = case.args[0]
    dim = case.params.get("dim")
    count = x.numel() if dim is None else x.numel() // x.sum(dim).numel()
    case.params["correction"] = draw(st.sampled_from([0, 1])) if count > 1 else 0
    return case


@spec("std")  # distinct values: the spread is never 0, where the square root has its kink
def _std(draw):
    case = _reduce_case(draw, distinct)
    x = case.args[0]
    dim = case.params.get("dim")
    count = x.numel() if dim is None else x.numel() // x.sum(dim).numel()
    if count == 1:  # a single value has no spread: reduce over all of a bigger tensor instead
        x = draw(distinct((2, 3)))
        case = Case((x,), {})
    case.params["correction"] = draw(st.sampled_from([0, 1]))
    return case


@spec("norm")
def _norm(draw):
    p = draw(st.sampled_from([1, 2, math.inf]))
    values = _distinct_magnitudes if p != 2 else (lambda s: signed(s, 0.2, 2.0))
    case = _reduce_case(draw, values)
    case.params["p"] = p
    return case


def _pair_apart(draw, shape):
    """Two tensors that differ by at least 0.1 elementwise (no ties for maximum / minimum)."""
    x = draw(floats(shape))
    return x, x + draw(signed(shape, 0.1, 1.5))


for _name in ("maximum", "minimum"):

    @spec(_name)
    def _extremum(draw):
        return Case(_pair_apart(draw, draw(small_shapes())))


def _unary(name: str, values, **choices) -> None:
    @spec(name)
    def _case(draw):
        params = {k: draw(st.sampled_from(v)) for k, v in choices.items()}
        return Case((draw(values(draw(small_shapes()))),), params)


_unary("log1p", lambda s: floats(s, -0.6, 2.0))
_unary("expm1", lambda s: floats(s))
_unary("erf", lambda s: floats(s))
_unary("gelu", lambda s: floats(s, -3.0, 3.0), approximate=["none", "tanh"])
_unary("leaky_relu", lambda s: signed(s, 0.05, 2.0), negative_slope=[0.01, 0.2, -0.5])


@spec("softplus")
def _softplus(draw):
    beta, threshold = draw(st.sampled_from([1.0, 0.5, 2.0])), draw(st.sampled_from([20.0, 1.0]))
    x = draw(away_from(draw(small_shapes()), [threshold / beta], low=-3.0, high=3.0, margin=0.1))
    return Case((x,), {"beta": beta, "threshold": threshold})


@spec("dropout")
def _dropout(draw):
    shape = draw(small_shapes())
    n = math.prod(shape)
    keep = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=F64).reshape(shape)
    return Case((draw(floats(shape)),), {"mask": keep * 2.0})  # p = 0.5: kept values scaled by 2


@st.composite
def _gather_geometry(draw):
    shape = draw(small_shapes(min_dims=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    sizes = [draw(st.integers(1, s)) for s in shape]
    sizes[dim] = draw(st.integers(1, 4))  # more picks than entries: repeated indices add up
    n = math.prod(sizes)
    picks = draw(st.lists(st.integers(0, shape[dim] - 1), min_size=n, max_size=n))
    return tuple(shape), dim, torch.tensor(picks).reshape(sizes)


@spec("gather")
def _gather(draw):
    shape, dim, index = draw(_gather_geometry())
    return Case((draw(floats(shape)),), {"dim": dim, "index": index})


@spec("gather_scatter")
def _gather_scatter(draw):
    shape, dim, index = draw(_gather_geometry())
    return Case((draw(floats(tuple(index.shape))),), {"dim": dim, "index": index, "shape": shape})


@spec("masked_fill")
def _masked_fill(draw):
    shape = draw(small_shapes())
    n = math.prod(shape)
    mask = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=torch.bool).reshape(shape)
    return Case((draw(floats(shape)), mask), {"value": draw(st.sampled_from([0.0, -1.5]))})


# --- convolution and pooling: small planes so that the finite differences stay cheap ------------
@st.composite
def _conv_geometry(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    per_group = (1, 1) if groups == 2 else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    c_in, c_out = groups * per_group[0], groups * per_group[1]
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    low = [max(1, dilation[i] * (k[i] - 1) + 1 - 2 * padding[i]) for i in range(2)]
    size = [draw(st.integers(low[i], max(low[i], 4))) for i in range(2)]
    x_shape = (draw(st.sampled_from([1, 1, 2])), c_in, *size)
    w_shape = (c_out, c_in // groups, *k)
    out = [(size[i] + 2 * padding[i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(2)]
    params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return x_shape, w_shape, (x_shape[0], c_out, *out), params


@spec("conv2d")
def _conv2d(draw):
    x_shape, w_shape, _, params = draw(_conv_geometry())
    x, w = draw(floats(x_shape)), draw(floats(w_shape))
    bias = draw(st.one_of(st.none(), floats((w_shape[0],))))
    return Case((x, w) if bias is None else (x, w, bias), params)


@spec("conv2d_input")
def _conv2d_input(draw):
    x_shape, w_shape, out_shape, params = draw(_conv_geometry())
    return Case((draw(floats(out_shape)), draw(floats(w_shape))), {"shape": x_shape, **params})


@spec("conv2d_weight")
def _conv2d_weight(draw):
    x_shape, w_shape, out_shape, params = draw(_conv_geometry())
    return Case((draw(floats(x_shape)), draw(floats(out_shape))), {"shape": w_shape, **params})


@st.composite
def _pool_geometry(draw, with_dilation: bool):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, side // 2)) for side in k)
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if with_dilation else (1, 1)
    # at least one window's span of real values: no window of max_pool2d lies in the padding alone
    size = [draw(st.integers(dilation[i] * (k[i] - 1) + 1, 5)) for i in range(2)]
    lead = draw(st.sampled_from([(1, 2), (2, 1), (2,)]))
    params = {"kernel_size": k, "stride": stride, "padding": padding, "ceil_mode": draw(st.booleans())}
    if with_dilation:
        params["dilation"] = dilation
    return (*lead, *size), params


@spec("max_pool2d")  # distinct values: no ties inside a window
def _max_pool2d(draw):
    shape, params = draw(_pool_geometry(True))
    return Case((draw(distinct(shape)),), params)


def _avg_params(draw, params):
    params["count_include_pad"] = draw(st.booleans())
    params["divisor_override"] = draw(st.sampled_from([None, 3]))
    return params


@spec("avg_pool2d")
def _avg_pool2d(draw):
    shape, params = draw(_pool_geometry(False))
    return Case((draw(floats(shape)),), _avg_params(draw, params))


@spec("avg_pool2d_backward")
def _avg_pool2d_backward(draw):
    shape, params = draw(_pool_geometry(False))
    params = _avg_params(draw, params)
    out = torch.ops.aten.avg_pool2d.default(torch.zeros(shape, dtype=F64), *params.values())
    return Case((draw(floats(tuple(out.shape))),), {"shape": shape, **params})


@spec("batch_norm")  # distinct values: every channel has a spread in training
def _batch_norm(draw):
    c = draw(st.integers(1, 3))
    shape = (draw(st.integers(2, 3)), c, *draw(st.lists(st.integers(1, 2), max_size=2)))
    x = draw(distinct(shape))
    weight = draw(st.one_of(st.none(), floats((c,), 0.5, 2.0)))
    bias = draw(st.one_of(st.none(), floats((c,)))) if weight is not None else None
    training = draw(st.booleans())
    params = {"training": training, "eps": 1e-5}
    if not training:
        params["running_mean"] = draw(floats((c,), -1.0, 1.0))
        params["running_var"] = draw(floats((c,), 0.5, 2.0))
    return Case((x, weight, bias), params)


# --- x[idx] = value (tapegrad.ops.assign) ------------------------------------------------------
@spec("index_put")
def _index_put(draw):
    from op_specs import indices

    shape = draw(small_shapes(min_dims=1))
    kind = draw(st.sampled_from(["basic", "mask", "integers"]))
    if kind == "mask":
        n = math.prod(shape)
        idx = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n))).reshape(shape)
    elif kind == "integers":  # distinct rows: a repeated index would write twice
        rows = draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=shape[0], unique=True))
        idx = torch.tensor(rows)
    else:
        idx = draw(indices(shape))
        if isinstance(idx, torch.Tensor) and idx.dtype != torch.bool:  # no position written twice
            idx = torch.unique(idx % shape[0])
    picked = tuple(torch.empty(shape)[idx].shape)
    value_shape = picked[draw(st.integers(0, len(picked))) :]  # a value broadcasting to x[idx]
    # a number only where part of x is left: else nothing depends on the inputs (torch's reference then fails)
    number = math.prod(picked) < math.prod(shape) and draw(st.integers(0, 4)) == 0
    value = 0.25 if number else draw(floats(value_shape))
    return Case((draw(floats(shape)), value), {"idx": idx})
