"""An input spec for every primitive the library registers (tapegrad ops, nn fused losses), away from kinks.

``SPECS[name]`` is a hypothesis strategy of `Case`s. In a case's ``args``, floating point torch
tensors are the differentiable inputs; anything else (bool masks, Python numbers, None) is a
constant. Binary elementwise primitives get equal shapes: the front ends broadcast with
``broadcast_to`` / ``sum_to`` before calling them (those front ends are tested separately).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st
from strategies import away_from, broadcast_pair, distinct, floats, signed, small_shapes


@dataclass
class Case:
    """One call of a primitive: positional ``args`` and keyword ``params``."""

    args: tuple
    params: dict = field(default_factory=dict)
    # finite differences through a float32 cast need a larger step
    gradcheck: dict = field(default_factory=dict)

    def differentiable(self) -> list[int]:
        """Positions of the float tensors among ``args``."""
        return [i for i, a in enumerate(self.args) if isinstance(a, torch.Tensor) and a.is_floating_point()]


SPECS: dict[str, st.SearchStrategy] = {}
# torch.autograd differentiates each primitive's forward as the reference; a forward on a kernel torch
# cannot differentiate twice (CPU flash attention) names a plain-torch equivalent here instead
REFERENCES: dict[str, Callable] = {}


def spec(name: str) -> Callable:
    """Register the composite strategy below as the spec of primitive ``name``."""

    def register(fn: Callable) -> Callable:
        SPECS[name] = st.composite(fn)()
        return fn

    return register


def _unary(name: str, values: Callable[[Any], st.SearchStrategy]) -> None:
    @spec(name)
    def _case(draw):
        return Case((draw(values(draw(small_shapes()))),))


for _name in ("neg", "exp", "sin", "cos", "tanh", "sigmoid"):
    _unary(_name, lambda s: floats(s, -2.0, 2.0))
for _name in ("log", "sqrt"):
    _unary(_name, lambda s: floats(s, 0.2, 3.0))
for _name in ("abs", "relu"):
    _unary(_name, lambda s: signed(s, 0.05, 2.0))


def _binary(name: str, left: Callable, right: Callable, scalars: tuple[float, ...]) -> None:
    """Two equal-shaped tensors, or a Python number on one side."""

    @spec(name)
    def _case(draw):
        shape = draw(small_shapes())
        mode = draw(st.sampled_from(["tensors", "left number", "right number"]))
        x = draw(st.sampled_from(scalars)) if mode == "left number" else draw(left(shape))
        y = draw(st.sampled_from(scalars)) if mode == "right number" else draw(right(shape))
        return Case((x, y))


_binary("add", lambda s: floats(s), lambda s: floats(s), (-1.5, 0.0, 2))
_binary("sub", lambda s: floats(s), lambda s: floats(s), (-1.5, 0.0, 2))
_binary("mul", lambda s: floats(s), lambda s: floats(s), (-1.5, 0.0, 3))
_binary("div", lambda s: floats(s), lambda s: signed(s, 0.3, 2.0), (-1.5, 0.5, 2))
# base > 0 so that x**y and log(x) (the exponent's gradient) are smooth; integer exponents too.
# The exponent avoids 0, where torch.autograd masks the base's gradient (its second order is then 0).
_binary("pow", lambda s: floats(s, 0.3, 2.0), lambda s: away_from(s, [0.0]), (0.5, 2, 3, 1.5))


@spec("tanh_backward")  # the fused gradients of tanh and sigmoid, from the output
def _tanh_backward(draw):
    shape = draw(small_shapes())
    return Case((draw(floats(shape)), draw(floats(shape, -0.95, 0.95))))


@spec("sigmoid_backward")
def _sigmoid_backward(draw):
    shape = draw(small_shapes())
    return Case((draw(floats(shape)), draw(floats(shape, 0.05, 0.95))))


def _class_labels(draw, shape: tuple[int, ...]) -> torch.Tensor:
    """Integer labels for rows of ``shape``'s last dimension (the classes)."""
    return torch.randint(0, shape[-1], shape[:-1], generator=torch.Generator().manual_seed(draw(st.integers(0, 99))))


@spec("mse_loss")  # nn.losses: one fused record for nn.MSELoss's mean and batchmean (scale=) reductions
def _mse_loss(draw):
    shape = draw(small_shapes())
    labels = len(shape) >= 1 and draw(st.booleans())
    target = _class_labels(draw, shape) if labels else draw(floats(shape))
    return Case((draw(floats(shape)), target), {"scale": draw(st.sampled_from([1.0, 2.5]))})


@spec("sub_signed")  # nn.losses: input minus class labels as +-1 rows (L1, and MSE's other reductions)
def _sub_signed(draw):
    shape = draw(small_shapes(min_dims=1))
    return Case((draw(floats(shape)), _class_labels(draw, shape)))


@spec("matmul")
def _matmul(draw):
    n, k, m, b = (draw(st.integers(1, 3)) for _ in range(4))
    left = draw(st.sampled_from([(k,), (n, k), (b, n, k)]))
    right = draw(st.sampled_from([(k,), (k, m), (b, k, m)] + ([(1, k, m)] if len(left) == 3 else [])))
    return Case((draw(floats(left)), draw(floats(right))))


@spec("linear")
def _linear(draw):
    fan_in, fan_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lead = draw(small_shapes(max_dims=2))
    x = draw(floats((*lead, fan_in)))
    weight = draw(floats((fan_out, fan_in)))
    bias = draw(st.one_of(st.none(), floats((fan_out,))))
    return Case((x, weight) if bias is None and draw(st.booleans()) else (x, weight, bias))


@spec("linear_chain")  # nn.Sequential(fuse=True)'s run of Linear (+ activation) layers
def _linear_chain(draw):
    lead = draw(small_shapes(max_dims=2))
    widths = draw(st.lists(st.integers(1, 3), min_size=2, max_size=4))
    x = draw(floats((*lead, widths[0])))
    acts = tuple(draw(st.lists(st.sampled_from(["relu", "tanh", "sigmoid", None]), min_size=len(widths) - 1,
                               max_size=len(widths) - 1)))  # fmt: skip
    args: list[Any] = [x]
    h = x
    for fan_in, fan_out, act in zip(widths, widths[1:], acts):
        weight = draw(floats((fan_out, fan_in)))
        z = (h @ weight.mT).reshape(-1, fan_out)
        if act != "relu" and draw(st.booleans()):
            bias = None
        else:  # per output unit, a bias that puts every pre-activation at least 0.1 above or below 0 (relu's kink)
            above = torch.tensor(draw(st.lists(st.booleans(), min_size=fan_out, max_size=fan_out)))
            low = (z.amin(0) if z.numel() else torch.zeros(fan_out)).neg() + 0.1
            high = (z.amax(0) if z.numel() else torch.zeros(fan_out)).neg() - 0.1
            bias = torch.where(above, low, high).to(x.dtype)
        h = h @ weight.mT if bias is None else h @ weight.mT + bias
        h = h if act is None else getattr(torch, act)(h)
        args += [weight, bias]
    return Case(tuple(args), {"activations": acts})


def _reduce_dim(draw, ndim: int, allow_none: bool = True, allow_tuple: bool = True) -> Any:
    choices = [st.integers(-ndim, ndim - 1)] if ndim else [st.sampled_from([0, -1])]
    if allow_none:
        choices.append(st.none())
    if allow_tuple and ndim:
        choices.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))
    return draw(st.one_of(*choices))


def _reduction(name: str, values: Callable, allow_tuple: bool) -> None:
    @spec(name)
    def _case(draw):
        shape = draw(small_shapes())
        dim = _reduce_dim(draw, len(shape), allow_tuple=allow_tuple)
        params = {} if dim is None else {"dim": dim, "keepdim": draw(st.booleans())}
        return Case((draw(values(shape)),), params)


_reduction("sum", floats, allow_tuple=True)
_reduction("mean", floats, allow_tuple=True)
_reduction("max", distinct, allow_tuple=False)  # distinct values: ties are a kink


@spec("logsumexp")
def _logsumexp(draw):
    shape = draw(small_shapes())
    dim = _reduce_dim(draw, len(shape), allow_none=False)
    return Case((draw(floats(shape, -3.0, 3.0)),), {"dim": dim, "keepdim": draw(st.booleans())})


def _normaliser(name: str) -> None:
    @spec(name)
    def _case(draw):
        shape = draw(small_shapes())
        dim = _reduce_dim(draw, len(shape), allow_none=False, allow_tuple=False)
        return Case((draw(floats(shape, -3.0, 3.0)),), {"dim": dim})


_normaliser("softmax")
_normaliser("log_softmax")


@spec("broadcast_to")
def _broadcast_to(draw):
    big, small = draw(broadcast_pair())
    return Case((draw(floats(small)),), {"shape": big})


@spec("sum_to")
def _sum_to(draw):
    big, small = draw(broadcast_pair())
    return Case((draw(floats(big)),), {"shape": small})


@spec("reshape")
def _reshape(draw):
    shape = draw(small_shapes())
    n = math.prod(shape)
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    first = draw(st.sampled_from(divisors))
    options = [(n,), (first, n // first), (first, -1), (n // first, 1, first)]
    new = draw(st.sampled_from(options + [()] if n == 1 else options))
    return Case((draw(floats(shape)),), {"shape": new})


@spec("transpose")
def _transpose(draw):
    shape = draw(small_shapes(min_dims=1))
    nd = len(shape)
    dim0, dim1 = draw(st.integers(-nd, nd - 1)), draw(st.integers(-nd, nd - 1))
    return Case((draw(floats(shape)),), {"dim0": dim0, "dim1": dim1})


@spec("permute")
def _permute(draw):
    shape = draw(small_shapes())
    dims = tuple(draw(st.permutations(range(len(shape)))))
    if dims and draw(st.booleans()):
        dims = tuple(d - len(shape) for d in dims)  # negative dims are allowed
    return Case((draw(floats(shape)),), {"dims": dims})


@st.composite
def indices(draw, shape: tuple[int, ...]) -> Any:
    """A torch index into ``shape``: ints, slices with steps, None, Ellipsis, integer tensors with
    repeats (their gradients add up), boolean masks."""
    kind = draw(st.sampled_from(["basic", "int tensor", "mask", "ellipsis"]))
    if kind == "int tensor":
        picks = draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=5))
        return torch.tensor(picks)
    if kind == "mask":
        n = math.prod(shape)
        flags = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        return torch.tensor(flags).reshape(shape)
    if kind == "ellipsis":
        return (Ellipsis, draw(st.integers(-shape[-1], shape[-1] - 1)))
    idx = []
    for side in shape[: draw(st.integers(1, len(shape)))]:
        if draw(st.booleans()):
            idx.append(draw(st.integers(-side, side - 1)))
        else:
            start = draw(st.integers(0, side - 1))
            idx.append(slice(start, draw(st.integers(start + 1, side)), draw(st.integers(1, 2))))
        if draw(st.integers(0, 4)) == 0:
            idx.append(None)
    return tuple(idx)


@spec("index")
def _index(draw):
    shape = draw(small_shapes(min_dims=1))
    return Case((draw(floats(shape)),), {"idx": draw(indices(shape))})


@spec("index_scatter")
def _index_scatter(draw):
    shape = draw(small_shapes(min_dims=1))
    idx = draw(indices(shape))
    picked = torch.empty(shape)[idx].shape
    return Case((draw(floats(picked)),), {"idx": idx, "shape": shape})


@spec("cat")
def _cat(draw):
    shape = draw(small_shapes(min_dims=1))
    nd = len(shape)
    dim = draw(st.integers(-nd, nd - 1))
    sides = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    parts = [shape[: dim % nd] + (s,) + shape[dim % nd + 1 :] for s in sides]
    return Case(tuple(draw(floats(p)) for p in parts), {"dim": dim})


@spec("stack")
def _stack(draw):
    shape = draw(small_shapes())
    nd = len(shape) + 1
    count = draw(st.integers(1, 3))
    return Case(tuple(draw(floats(shape)) for _ in range(count)), {"dim": draw(st.integers(-nd, nd - 1))})


@spec("where")
def _where(draw):
    shape = draw(small_shapes())
    n = math.prod(shape)
    cond = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=torch.bool).reshape(shape)
    mode = draw(st.sampled_from(["tensors", "left number", "right number"]))
    x = -0.5 if mode == "left number" else draw(floats(shape))
    y = 1.5 if mode == "right number" else draw(floats(shape))
    return Case((cond, x, y))


@spec("clamp")
def _clamp(draw):
    shape = draw(small_shapes())
    low = draw(st.one_of(st.none(), st.floats(-1.5, 0.0)))
    high = draw(st.none() if low is None else st.one_of(st.none(), st.floats(0.5, 1.5)))
    if low is None and high is None:
        high = draw(st.floats(0.5, 1.5))
    bounds = [b for b in (low, high) if b is not None]
    return Case((draw(away_from(shape, bounds)),), {"min": low, "max": high})


@spec("cast")
def _cast(draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    options = {"eps": 1e-3, "atol": 1e-3, "rtol": 1e-3} if dtype == torch.float32 else {}
    params = {"dtype": dtype} if draw(st.booleans()) else {"dtype": dtype, "device": torch.device("cpu")}
    return Case((draw(floats(draw(small_shapes()))),), params, options)


import op_specs_fused  # noqa: E402, F401  (the fused layer primitives)
import op_specs_multi  # noqa: E402, F401  (the multi-output primitives)
import op_specs_ops  # noqa: E402, F401  (issue 23's ops)
import op_specs_torch  # noqa: E402, F401  (the specs of the ops beyond the seeds register themselves)
