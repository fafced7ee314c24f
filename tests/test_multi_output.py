"""Multi-output primitives: one record for several outputs (``multi_output=True`` in `tg.primitive`).

The walk keys gradients per output and hands the rules one cotangent per output (zeros, or None with
``unused_cotangents="none"``, for an output nobody used); first and second order against torch.autograd
and finite differences, in-place changes of a saved output, the release of outputs nobody holds, trace,
forward mode, checkpointing and explain. Users: split, chunk and unbind are one record each.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import tapegrad as tg
import viz

F64 = torch.float64
seen: list[tuple] = []  # the cotangents the rules below were handed (None or a shape)


def _sincos_vjp(g, out, x):
    seen.append(tuple(None if gk is None else tuple(gk.shape) for gk in g))
    g_sin, g_cos = g  # None for an output nobody used
    grad = 0.0 if g_sin is None else g_sin * x.cos()
    return (grad if g_cos is None else grad - g_cos * x.sin(),)


# sin and cos of x: the rule reads x only (the outputs are not saved)
sincos = tg.primitive(
    "test_multi_sincos", lambda x: (x.sin(), x.cos()), _sincos_vjp, saves=(0,), multi_output=True,
    unused_cotangents="none",
)  # fmt: skip
# the same with zeros for an unused output, and a rule that reads the outputs (saved): d sin = cos, d cos = -sin
sincos_zeros = tg.primitive(
    "test_multi_sincos_zeros",
    lambda x: (x.sin(), x.cos()),
    [lambda g, out, x: g[0] * out[1] - g[1] * out[0]],
    saves=("output",),
    multi_output=True,
)


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _loss_tg(prim, x):
    s, c = prim(x)
    return (s * s * c).sum() + (c * 2).sum()  # both outputs, one used twice


def _loss_torch(x):
    s, c = x.sin(), x.cos()
    return (s * s * c).sum() + (c * 2).sum()


@pytest.mark.parametrize("prim", [sincos, sincos_zeros], ids=["none", "zeros"])
def test_first_and_second_order_match_torch_and_finite_differences(prim):
    x0 = _x(3, 2)
    x = tg.Tensor(x0.clone(), requires_grad=True)
    with tg.Tape() as outer:
        with tg.Tape() as inner:
            loss = _loss_tg(prim, x)
        assert [r.primitive.name for r in inner][0] == prim.name and len(inner.records[0].outputs) == 2
        g = inner.gradient(loss, x)
        total = (g * g).sum()
    gg = outer.gradient(total, x)
    ref_x = x0.clone().requires_grad_()
    (ref_g,) = torch.autograd.grad(_loss_torch(ref_x), ref_x, create_graph=True)
    (ref_gg,) = torch.autograd.grad((ref_g * ref_g).sum(), ref_x)
    torch.testing.assert_close(g.data, ref_g.detach())
    torch.testing.assert_close(gg.data, ref_gg)
    assert tg.gradcheck(lambda t: _loss_tg(prim, t), [x0.clone()])
    assert tg.gradcheck(lambda t: tg.cat([o.reshape(-1) for o in prim(t)]), [x0.clone()])


def test_an_unused_output_gets_none_or_zeros_as_declared():
    x = tg.Tensor(_x(4), requires_grad=True)
    seen.clear()
    with tg.Tape() as tape:
        _, c = sincos(x)
        loss = c.sum()
    (gx,) = tape.gradient(loss, [x])
    assert seen == [(None, (4,))]  # sin's cotangent: None, the rule skips it
    torch.testing.assert_close(gx.data, -x.data.sin())
    with tg.Tape() as tape:
        s, _ = sincos_zeros(x)
        loss = (s * 3).sum()
    torch.testing.assert_close(tape.gradient(loss, x).data, 3 * x.data.cos())  # cos's cotangent: zeros
    with tg.Tape() as tape:  # a target that is one of the outputs
        s, _ = sincos_zeros(x)
    torch.testing.assert_close(tape.gradient(s, x, grad_output=tg.Tensor(torch.ones(4, dtype=F64))).data, x.data.cos())


def test_in_place_change_of_a_saved_output_is_caught_and_named():
    x = tg.Tensor(_x(3), requires_grad=True)
    with tg.Tape() as tape:
        s, c = sincos_zeros(x)
        loss = (s + c).sum()
    c.data.add_(1.0)
    with pytest.raises(tg.InPlaceError, match=r"saved its output 1 \(3,\) float64"):
        tape.gradient(loss, x)
    with tg.Tape() as tape:  # not saved: the rule never reads it, so a change is fine
        s, c = sincos(x)
        loss = (s + c).sum()
    s.data.mul_(2.0)
    torch.testing.assert_close(tape.gradient(loss, x).data, x.data.cos() - x.data.sin())


def test_outputs_nobody_holds_are_released_and_held_ones_are_kept():
    x = tg.Tensor(_x(5), requires_grad=True)
    with tg.Tape() as tape:
        pair = sincos(x)  # the user's tuple: both outputs reachable
        kept = weakref.ref(pair[0].data)
        loss = (pair[0] * 2).sum()
    assert isinstance(pair[0].data, torch.Tensor) and isinstance(pair[1].data, torch.Tensor)
    with tg.Tape() as tape:
        s, _ = sincos(x)  # cos: held by the record only
        loss = (s * 2).sum()
        for _ in range(40):  # enough records that the tape sweeps
            loss = loss * 1.0
    gc.collect()
    record = tape.records[0]
    assert type(record.output[1].data).__name__ == "Released" and isinstance(s.data, torch.Tensor)
    torch.testing.assert_close(tape.gradient(loss, x).data, 2 * x.data.cos())
    assert kept() is not None


def test_trace_forward_mode_checkpoint_and_explain(quick_inductor):
    x0 = _x(3, 2)
    x = tg.Tensor(x0.clone(), requires_grad=True)

    def loss():
        return _loss_tg(sincos_zeros, x) + _loss_tg(sincos, x)

    with tg.Tape() as tape:
        eager = loss()
    tape.backward(eager)
    want = x.grad.data.clone()
    for executor in ("python", "inductor"):  # (inductor: its compile stood in for)
        step = tg.trace(loss, check=False, executor=executor)
        for _ in range(2):
            x.grad = None
            step()
            torch.testing.assert_close(x.grad.data, want)
    t = _x(3, 2, seed=1)
    _, tangent = tg.jvp(lambda a: sincos(a), (tg.Tensor(x0),), (tg.Tensor(t),))
    torch.testing.assert_close(tangent[0].data, x0.cos() * t)
    torch.testing.assert_close(tangent[1].data, -x0.sin() * t)
    with tg.Tape() as tape:
        out = tg.checkpoint(lambda a: _loss_tg(sincos, a), x)
    torch.testing.assert_close(tape.gradient(out, x).data, want / 2)
    with tg.Tape(persistent=True) as tape:
        s, c = sincos(x)
        y = (s * c).sum()
    text = str(viz.explain(tape, y))
    assert "v0_0, v0_1 = test_multi_sincos(in0)" in text


def test_split_chunk_and_unbind_are_one_record_each():
    x0 = _x(6, 4)
    x = tg.Tensor(x0.clone(), requires_grad=True)
    with tg.Tape() as tape:
        a, b, c = x.split(2)
        q, k = x.chunk(2, dim=1)
        rows = x.unbind(0)
        loss = (a * b).sum() + q.exp().sum() + (rows[1] * rows[1] * rows[3]).sum()  # c, k and 4 rows: unused
    assert [r.primitive.name for r in tape][:3] == ["split_with_sizes", "split_with_sizes", "unbind"]
    assert [len(r.outputs) for r in tape.records[:3]] == [3, 2, 6]
    ref_x = x0.clone().requires_grad_()
    a, b, c = ref_x.split(2)
    q, k = ref_x.chunk(2, dim=1)
    rows = ref_x.unbind(0)
    ref = (a * b).sum() + q.exp().sum() + (rows[1] * rows[1] * rows[3]).sum()
    torch.testing.assert_close(tape.gradient(loss, x).data, torch.autograd.grad(ref, ref_x)[0])


def test_a_qkv_unbind_is_one_record_where_indexing_is_three():
    qkv = tg.Tensor(_x(3, 2, 4, 5), requires_grad=True)
    with tg.Tape() as tape:
        q, k, v = qkv.unbind(0)
        tg.scaled_dot_product_attention(q, k, v)
    assert [r.primitive.name for r in tape] == ["unbind", "scaled_dot_product_attention"]
    with tg.Tape() as tape:
        tg.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
    assert [r.primitive.name for r in tape] == ["index", "index", "index", "scaled_dot_product_attention"]


def test_a_forward_that_returns_no_tuple_is_a_clear_error():
    bad = tg.primitive("test_multi_bad", lambda x: x * 2, [lambda g, out, x: g[0]], multi_output=True)
    with pytest.raises(TypeError, match="test_multi_bad: a multi_output primitive's forward must return a tuple"):
        bad(tg.Tensor(_x(2), requires_grad=True))
    with pytest.raises(ValueError, match="unused_cotangents must be 'zeros' or 'none'"):
        tg.primitive("test_multi_bad2", torch.exp, None, multi_output=True, unused_cotangents="skip")
