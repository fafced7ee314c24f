"""`tg.Tensor`: operators, methods, metadata carried through, conversions, constants without gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tapegrad as tg

F64 = torch.float64
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

BINARY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
    "@": lambda a, b: a @ b.mT,
}
UNARY_METHODS = ["exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "relu", "sigmoid", "neg"]


def pair():
    a = torch.tensor([[0.5, 1.0, 1.5], [2.0, 0.7, 1.2]], dtype=F64)
    b = torch.tensor([[1.1, 0.4, 0.9], [0.6, 1.3, 0.8]], dtype=F64)
    return a, b


def grads_of(fn, *values):
    """(value, gradients) of fn.sum() from tapegrad and from torch.autograd."""
    xs = [tg.Tensor(v.clone(), requires_grad=True) for v in values]
    refs = [v.clone().requires_grad_() for v in values]
    with tg.Tape() as tape:
        out = fn(*xs).sum()
    ours = tape.gradient(out, xs)
    theirs = torch.autograd.grad(fn(*refs).sum(), refs)
    return out, ours, theirs


@pytest.mark.parametrize("op", sorted(BINARY))
def test_operators_match_torch(op):
    out, ours, theirs = grads_of(BINARY[op], *pair())
    for g, ref in zip(ours, theirs):
        torch.testing.assert_close(g.data, ref)


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**"])
@pytest.mark.parametrize("number", [2, 0.5, np.float64(1.5)])
def test_operators_with_numbers_on_either_side(op, number):
    a, _ = pair()
    for fn in (lambda x: BINARY[op](x, number), lambda x: BINARY[op](number, x)):
        out, (g,), (ref,) = grads_of(fn, a)
        assert isinstance(out, tg.Tensor)
        torch.testing.assert_close(g.data, ref)


@pytest.mark.parametrize("name", UNARY_METHODS)
def test_unary_methods_and_functions_agree(name):
    a, _ = pair()
    x = tg.Tensor(a)
    torch.testing.assert_close(getattr(x, name)().data, getattr(torch, name)(a))
    torch.testing.assert_close(getattr(tg, name)(x).data, getattr(torch, name)(a))
    assert torch.equal((-x).data, -a) and torch.equal(abs(-x).data, a)


def test_reduction_and_shape_methods_follow_torch_signatures():
    a = torch.arange(24, dtype=F64).reshape(2, 3, 4) / 10
    x = tg.Tensor(a)
    checks = {
        "sum": (x.sum(), a.sum()),
        "sum dim": (x.sum(dim=1), a.sum(dim=1)),
        "sum tuple keepdim": (x.sum((0, 2), keepdim=True), a.sum((0, 2), keepdim=True)),
        "mean": (x.mean(-1), a.mean(-1)),
        "max": (x.max(), a.max()),
        "max dim values": (x.max(dim=2).values, a.max(dim=2).values),
        "max dim indices": (x.max(2, keepdim=True).indices, a.max(2, keepdim=True).indices),
        "logsumexp": (x.logsumexp(1), a.logsumexp(1)),
        "softmax": (x.softmax(dim=0), a.softmax(dim=0)),
        "log_softmax": (x.log_softmax(-1), a.log_softmax(-1)),
        "reshape": (x.reshape(6, 4), a.reshape(6, 4)),
        "reshape tuple": (x.reshape((4, -1)), a.reshape((4, -1))),
        "view": (x.view(-1), a.view(-1)),
        "transpose": (x.transpose(0, 2), a.transpose(0, 2)),
        "permute": (x.permute(2, 0, 1), a.permute(2, 0, 1)),
        "permute tuple": (x.permute((1, 0, 2)), a.permute((1, 0, 2))),
        "mT": (x.mT, a.mT),
        "unsqueeze": (x.unsqueeze(1), a.unsqueeze(1)),
        "squeeze": (x[:, :1].squeeze(1), a[:, :1].squeeze(1)),
        "flatten": (x.flatten(1), a.flatten(1)),
        "expand": (x[:, :1].expand(2, 5, 4), a[:, :1].expand(2, 5, 4)),
        "expand -1": (x[:1].expand(3, -1, -1), a[:1].expand(3, -1, -1)),
        "sum_to_size": (x.sum_to_size(1, 3, 1), a.sum_to_size(1, 3, 1)),
        "clamp": (x.clamp(0.5, 1.5), a.clamp(0.5, 1.5)),
        "clamp min": (x.clamp(min=1.0), a.clamp(min=1.0)),
        "index": (x[1, ::2, [0, 3]], a[1, ::2, [0, 3]]),
        "index ellipsis": (x[..., None, -1], a[..., None, -1]),
        "mask index": (x[x > 1.0], a[a > 1.0]),
        "argmax": (x.argmax(1), a.argmax(1)),
        "where": (x.where(x > 1.0, 0.0), a.where(a > 1.0, 0.0)),
    }
    for name, (ours, theirs) in checks.items():
        assert isinstance(ours, tg.Tensor), name
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, name
        torch.testing.assert_close(ours.data, theirs, msg=name)
    m = tg.Tensor(a[0])
    torch.testing.assert_close(m.T.data, a[0].T)
    torch.testing.assert_close(m.t().data, a[0].t())


def test_tensor_method_backward_through_shape_methods_matches_torch():
    a = torch.linspace(-1, 1, 24, dtype=F64).reshape(2, 3, 4)

    def fn(t):
        return (
            t.permute(2, 0, 1).reshape(4, 6).mT.unsqueeze(0).expand(2, 6, 4)
            * t.flatten(1).view(2, 6, 2).sum(-1, keepdim=True)
        ).tanh()

    _, (g,), (ref,) = grads_of(fn, a)
    torch.testing.assert_close(g.data, ref)


def test_comparisons_are_constants_without_gradient():
    a, b = pair()
    x = tg.Tensor(a, requires_grad=True)
    with tg.Tape() as tape:
        results = [x < 1.0, x <= 1.0, x > b, x >= 1.0, x == 1.0, x != 1.0, 1.0 < x, tg.sign(x - 1)]
        total = results[-1].sum()
    assert len(tape) == 3  # sub, sign (recorded with a zero gradient, as torch) and the sum
    for r, ref in zip(results[:7], [a < 1, a <= 1, a > b, a >= 1, a == 1, a != 1, 1 < a]):
        assert isinstance(r, tg.Tensor) and not r.requires_grad and r.dtype == torch.bool
        assert torch.equal(r.data, ref)
    assert results[-1].requires_grad and torch.equal(tape.gradient(total, x).data, torch.zeros_like(a))


def test_masks_and_integer_tensors_mix_with_float_tensors_as_in_torch():
    a, _ = pair()
    out, (g,), (ref,) = grads_of(lambda t: t * (t > 1.0) + t * torch.tensor([1, 0, 2]), a)
    torch.testing.assert_close(g.data, ref)
    assert out.dtype == F64


def test_non_float_tensors_pass_through():
    idx = tg.tensor([2, 0, 1])
    assert idx.dtype == torch.int64 and not idx.requires_grad
    assert torch.equal((idx + 1).data, torch.tensor([3, 1, 2]))
    x = tg.Tensor(torch.arange(3, dtype=F64), requires_grad=True)
    with tg.Tape() as tape:
        picked = x[idx]
        total = (picked * tg.tensor([1.0, 2.0, 3.0], dtype=F64)).sum()
    assert torch.equal(tape.gradient(total, x).data, torch.tensor([2.0, 3.0, 1.0], dtype=F64))
    with pytest.raises(TypeError, match="floating point"):
        tg.Tensor(torch.tensor([1, 2]), requires_grad=True)
    assert not x.to(torch.int64).requires_grad and x.to(torch.int64).dtype == torch.int64


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_are_carried_through_ops_and_gradients(device, dtype):
    x = tg.tensor([[0.5, -1.0], [2.0, 0.3]], dtype=dtype, device=device, requires_grad=True)
    w = tg.tensor([[1.0, 2.0], [0.5, -0.5]], dtype=dtype, device=device, requires_grad=True)
    with tg.Tape() as tape:
        y = (x @ w).tanh().softmax(-1) * 2 + x.sum(0)
        loss = tg.log_softmax(y, -1).mean()
    assert y.dtype == dtype and y.device.type == device and loss.dtype == dtype
    gx, gw = tape.gradient(loss, [x, w])
    for g in (gx, gw):
        assert g.dtype == dtype and g.device.type == device and g.shape == (2, 2)


def test_conversions():
    x = tg.tensor([[1.5, 2.5]], dtype=F64, requires_grad=True)
    assert x.sum().item() == 4.0 and isinstance(x.sum().item(), float)
    arr = x.numpy()
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.tolist() == [[1.5, 2.5]]
    d = x.detach()
    assert not d.requires_grad and d.data is x.data and isinstance(d, tg.Tensor)
    assert x.to(F64) is x and x.double() is x and x.cpu() is x
    f = x.float()
    assert f.dtype == torch.float32 and f.requires_grad
    with tg.Tape() as tape:
        y = (x.to(torch.float32) * 2).sum()
    g = tape.gradient(y, x)
    assert g.dtype == F64 and torch.equal(g.data, torch.full((1, 2), 2.0, dtype=F64))
    assert x.tolist() == [[1.5, 2.5]] and float(x[0, 0]) == 1.5 and int(x[0, 1]) == 2
    assert f"{x.sum():.1f}" == "4.0" and "requires_grad=True" in repr(x)


def test_metadata():
    x = tg.tensor(torch.zeros(2, 3, 4))
    assert x.shape == (2, 3, 4) and x.ndim == 3 and x.dim() == 3 and x.numel() == 24
    assert x.size() == torch.Size([2, 3, 4]) and x.size(1) == 3 and len(x) == 2
    assert x.is_floating_point() and x.is_leaf and x.grad is None
    assert [tuple(row.shape) for row in x] == [(3, 4), (3, 4)]
    assert len({x, x}) == 1  # hashable by identity


def test_factory_copies_and_constructor_wraps():
    data = torch.tensor([1.0, 2.0])
    t = tg.tensor(data)
    data[0] = 9.0
    assert t.data[0].item() == 1.0  # tg.tensor copies
    w = tg.Tensor(data)
    assert w.data is data  # tg.Tensor wraps
    assert tg.tensor([1, 2], dtype=torch.float32).dtype == torch.float32
    assert tg.tensor(np.array([1.0, 2.0])).dtype == F64
    assert tg.tensor(2.0, requires_grad=True).requires_grad
