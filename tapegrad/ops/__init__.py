"""All tapegrad ops; importing this registers the built-in primitives."""

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
from .linalg import linear, matmul
from .reduce import log_softmax, logsumexp, max, mean, softmax, sum
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

__all__ = [
    "abs", "add", "cos", "div", "eq", "exp", "ge", "gt", "le", "log", "lt", "mul", "ne", "neg", "pow",
    "relu", "sigmoid", "sign", "sin", "sqrt", "sub", "tanh", "linear", "matmul", "log_softmax",
    "logsumexp", "max", "mean", "softmax", "sum", "broadcast_to", "cast", "cat", "clamp", "index",
    "index_scatter", "permute", "reshape", "stack", "sum_to", "transpose", "where",
]  # fmt: skip
