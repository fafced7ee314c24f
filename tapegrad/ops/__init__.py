"""All tapegrad ops; importing this registers the built-in primitives."""

# activations, conv, extrema, index, pooling, shape_extra, special, stats: the ops torch users
# reach for beyond the seeds (one file per family)
from .activations import dropout, gelu, leaky_relu, softplus
from .conv import conv2d, conv2d_input, conv2d_weight
from .elementwise import (
    abs,
    add,
    cos,
    div,
    eq,
    exp,
    ge,
    gt,
    le,
    log,
    lt,
    mul,
    ne,
    neg,
    pow,
    relu,
    sigmoid,
    sign,
    sin,
    sqrt,
    sub,
    tanh,
)  # fmt: skip
from .extrema import argmax, argmin, maximum, minimum
from .index import gather, gather_scatter, masked_fill
from .linalg import linear, matmul
from .pooling import avg_pool2d, avg_pool2d_backward, max_pool2d
from .reduce import amax, amin, log_softmax, logsumexp, max, mean, min, softmax, sum
from .shape import (
    broadcast_to,
    cast,
    cat,
    clamp,
    index,
    index_scatter,
    permute,
    reshape,
    stack,
    sum_to,
    transpose,
    where,
)  # fmt: skip
from .shape_extra import flatten, squeeze, unflatten, unsqueeze
from .special import erf, expm1, log1p
from .stats import norm, std, var

__all__ = [
    "abs",
    "add",
    "cos",
    "div",
    "eq",
    "exp",
    "ge",
    "gt",
    "le",
    "log",
    "lt",
    "mul",
    "ne",
    "neg",
    "pow",
    "relu",
    "sigmoid",
    "sign",
    "sin",
    "sqrt",
    "sub",
    "tanh",
    "linear",
    "matmul",
    "log_softmax",
    "logsumexp",
    "max",
    "mean",
    "softmax",
    "sum",
    "broadcast_to",
    "cast",
    "cat",
    "clamp",
    "index",
    "index_scatter",
    "permute",
    "reshape",
    "stack",
    "sum_to",
    "transpose",
    "where",
]
__all__ += [
    "amax", "amin", "min", "dropout", "gelu", "leaky_relu", "softplus", "conv2d", "conv2d_input",
    "conv2d_weight", "argmax", "argmin", "maximum", "minimum", "gather", "gather_scatter", "masked_fill",
    "avg_pool2d", "avg_pool2d_backward", "max_pool2d", "flatten", "squeeze", "unflatten", "unsqueeze",
    "erf", "expm1", "log1p", "norm", "std", "var",
]  # fmt: skip
