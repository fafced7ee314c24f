"""NaN, infinity, tie and signed-zero semantics of reductions and piecewise ops equal torch's,
first and second order: one table of ops times one table of inputs, against torch.autograd."""

from __future__ import annotations

import math

import pytest
import torch

import tapegrad as tg

F64 = torch.float64
nan, inf = math.nan, math.inf

INPUTS = {
    "nan first": [nan, 1.0],
    "nan middle": [1.0, nan, 3.0],
    "two nans": [nan, 2.0, nan],
    "only nan": [nan],
    "ties": [2.0, 2.0, 1.0],
    "low ties": [1.0, 2.0, 1.0],
    "+inf": [inf, 1.0, inf],
    "-inf": [-inf, -inf, 0.0],
    "signed zeros": [0.0, -0.0],
    "zero ties": [-0.0, 0.0, -1.0],
    "at the clamp bounds": [-1.0, 1.0, 0.5],
}


def _full(m, x, value):
    """A constant bound of x's shape, a tensor of the side's own kind."""
    data = torch.full(tuple(x.shape), value, dtype=F64)
    return data if m is TORCH else tg.tensor(data)


def _k2(m, x):
    return m.topk(x, min(2, x.shape[0]))[0]


UNARY = {
    "max": lambda m, x: m.max(x),
    "max dim": lambda m, x: m.max(x, 0)[0],
    "min": lambda m, x: m.min(x),
    "min dim": lambda m, x: m.min(x, 0)[0],
    "amax": lambda m, x: m.amax(x),
    "amax dim": lambda m, x: m.amax(x, 0),
    "amin": lambda m, x: m.amin(x),
    "amin dim keepdim": lambda m, x: m.amin(x, 0, keepdim=True),
    "relu": lambda m, x: m.relu(x),
    "abs": lambda m, x: m.abs(x),
    "clamp": lambda m, x: m.clamp(x, -1.0, 1.0),
    "clamp min": lambda m, x: m.clamp(x, min=0.0),
    "clamp max": lambda m, x: m.clamp(x, max=1.0),
    "clamp tensor bounds": lambda m, x: m.clamp(x, _full(m, x, -1.0), _full(m, x, 1.0)),
    "sort": lambda m, x: m.sort(x)[0],
    "sort descending": lambda m, x: m.sort(x, descending=True)[0],
    "topk": _k2,
    "topk smallest": lambda m, x: m.topk(x, 1, largest=False)[0],
}

PAIRS = {
    "nan left": ([nan, 1.0], [0.0, 2.0]),
    "nan right": ([0.0, 2.0], [nan, 1.0]),
    "nan both": ([nan, 1.0], [nan, 1.0]),
    "ties": ([1.0, 2.0, 3.0], [1.0, 0.0, 3.0]),
    "inf": ([inf, -inf], [inf, 0.0]),
    "signed zeros": ([0.0, -0.0], [-0.0, 0.0]),
}

BINARY = {
    "maximum": lambda m, x, y: m.maximum(x, y),
    "minimum": lambda m, x, y: m.minimum(x, y),
    "max of two": lambda m, x, y: m.max(x, y),
    "min of two": lambda m, x, y: m.min(x, y),
}


class _TorchSide:
    """torch itself, called the way the table calls tapegrad."""

    def __getattr__(self, name):
        return getattr(torch, name)


TORCH = _TorchSide()


def _upstream(shape):
    return torch.arange(1.0, 1.0 + math.prod(shape), dtype=F64).reshape(shape)


def _same(ours, theirs, what):
    ours = torch.zeros_like(theirs) if ours is None else ours
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, what
    same = (ours == theirs) | (ours.isnan() & theirs.isnan())
    # signed zeros: the sign of a zero gradient is part of torch's semantics too
    same &= (torch.signbit(ours) == torch.signbit(theirs)) | ours.isnan()
    assert bool(same.all()), f"{what}: tapegrad {ours.tolist()} torch {theirs.tolist()}"


def _torch_grads(fn, values):
    xs = [torch.tensor(v, dtype=F64, requires_grad=True) for v in values]
    y = fn(TORCH, *xs)
    g = _upstream(y.shape)
    first = torch.autograd.grad(y, xs, g, create_graph=True, allow_unused=True)
    first = [torch.zeros_like(x) if f is None else f for x, f in zip(xs, first)]
    weights = [_upstream(x.shape) + 0.5 for x in xs]
    total = sum((f * w).sum() for f, w in zip(first, weights))
    second = torch.autograd.grad(total, xs, allow_unused=True) if total.requires_grad else [None] * len(xs)
    second = [torch.zeros_like(x) if s is None else s for x, s in zip(xs, second)]
    return y.detach(), [f.detach() for f in first], second


def _tapegrad_grads(fn, values):
    xs = [tg.tensor(v, dtype=F64, requires_grad=True) for v in values]
    with tg.Tape() as outer:
        with tg.Tape() as inner:
            y = fn(tg, *xs)
        g = tg.tensor(_upstream(tuple(y.shape)))
        first = inner.gradient(y, xs, grad_output=g, allow_unused=True)
        first = [tg.tensor(torch.zeros_like(x.data)) if f is None else f for x, f in zip(xs, first)]
        weights = [_upstream(tuple(x.shape)) + 0.5 for x in xs]
        total = sum((f * w).sum() for f, w in zip(first, weights))
    second = outer.gradient(total, xs, allow_unused=True) if total.requires_grad else [None] * len(xs)
    return y.data, [f.data for f in first], [None if s is None else s.data for s in second]


def _check(fn, values, what):
    y_t, first_t, second_t = _torch_grads(fn, values)
    y, first, second = _tapegrad_grads(fn, values)
    _same(y, y_t, f"{what}: output")
    for i in range(len(values)):
        _same(first[i], first_t[i], f"{what}: gradient of input {i}")
        _same(second[i], second_t[i], f"{what}: second-order gradient of input {i}")


@pytest.mark.parametrize("case", list(INPUTS))
@pytest.mark.parametrize("op", list(UNARY))
def test_unary_ops_match_torch(op, case):
    _check(UNARY[op], [INPUTS[case]], f"{op} on {case} {INPUTS[case]}")


@pytest.mark.parametrize("case", list(PAIRS))
@pytest.mark.parametrize("op", list(BINARY))
def test_binary_ops_match_torch(op, case):
    _check(BINARY[op], list(PAIRS[case]), f"{op} on {case} {PAIRS[case]}")
