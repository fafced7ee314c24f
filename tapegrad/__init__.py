"""tapegrad: automatic differentiation with an explicit tape, on plain torch tensor ops."""

from . import methods as _methods  # noqa: F401  (attaches ops to Tensor)
from .errors import AnomalyError, GradcheckError, InPlaceError, ShapeError, TapeError
from .functional import grad, hessian, jacobian, value_and_grad, vjp
from .gradcheck import gradcheck
from .ops import (
    abs,
    add,
    broadcast_to,
    cast,
    cat,
    clamp,
    cos,
    div,
    eq,
    exp,
    ge,
    gt,
    index,
    index_scatter,
    le,
    linear,
    log,
    log_softmax,
    logsumexp,
    lt,
    matmul,
    max,
    mean,
    mul,
    ne,
    neg,
    permute,
    pow,
    relu,
    reshape,
    sigmoid,
    sign,
    sin,
    softmax,
    sqrt,
    stack,
    sub,
    sum,
    sum_to,
    tanh,
    transpose,
    where,
)  # fmt: skip
from .ops import (
    amax,
    amin,
    argmax,
    argmin,
    avg_pool2d,
    conv2d,
    dropout,
    erf,
    expm1,
    flatten,
    gather,
    gelu,
    leaky_relu,
    log1p,
    masked_fill,
    max_pool2d,
    maximum,
    min,
    minimum,
    norm,
    softplus,
    squeeze,
    std,
    unflatten,
    unsqueeze,
    var,
)  # fmt: skip
from .primitive import Primitive, Record, primitive, registered_primitives
from .state import Scope
from .tape import Tape, detect_anomaly, enable_grad, no_grad, scope
from .tensor import Tensor, tensor
from .trace import trace

__version__ = "0.1.0"

__all__ = [
    "AnomalyError", "GradcheckError", "InPlaceError", "ShapeError", "TapeError", "grad", "hessian",
    "jacobian", "value_and_grad", "vjp", "gradcheck", "abs", "add", "broadcast_to", "cast", "cat",
    "clamp", "cos", "div", "eq", "exp", "ge", "gt", "index", "index_scatter", "le", "linear", "log",
    "log_softmax", "logsumexp", "lt", "matmul", "max", "mean", "mul", "ne", "neg", "permute", "pow",
    "relu", "reshape", "sigmoid", "sign", "sin", "softmax", "sqrt", "stack", "sub", "sum", "sum_to",
    "tanh", "transpose", "where", "Primitive", "Record", "primitive", "registered_primitives", "Scope",
    "Tape", "detect_anomaly", "enable_grad", "no_grad", "scope", "Tensor", "tensor", "trace",
]
__all__ += [
    "amax", "amin", "argmax", "argmin", "avg_pool2d", "conv2d", "dropout", "erf", "expm1", "flatten",
    "gather", "gelu", "leaky_relu", "log1p", "masked_fill", "max_pool2d", "maximum", "min", "minimum",
    "norm", "softplus", "squeeze", "std", "unflatten", "unsqueeze", "var",
]  # fmt: skip
