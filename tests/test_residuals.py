"""Forward residuals (``residuals=`` in `tg.primitive`): a record keeps what its forward computed on
the way (layer norm's mean and 1/std, attention's row log-sum-exps), its fast rule reuses them, and
the gradients are those of the rule that recomputes them, bit for bit."""

from __future__ import annotations

import pytest
import torch
from op_specs_multi import flat_out

import tapegrad as tg
from tapegrad.engine.release import keep_all

PRIMS = tg.registered_primitives()
WITH_RESIDUALS = sorted(n for n, p in PRIMS.items() if p.residuals is not None)


def _case(name: str, dtype: torch.dtype) -> tuple[tuple, dict]:
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=dtype)

    if name == "layer_norm":
        return (rand(4, 6), rand(6), rand(6)), {"normalized_shape": [6], "eps": 1e-5}
    if name == "scaled_dot_product_attention":
        return (rand(2, 3, 5, 4), rand(2, 3, 5, 4), rand(2, 3, 5, 4)), {"is_causal": True}
    if name == "cross_entropy":  # class indices, one ignored: nll_loss's kept total weight
        return (rand(6, 5), torch.tensor([0, 4, -100, 2, 2, 1])), {"weight": rand(5).abs()}
    if name == "lstm_layer":  # float32: oneDNN's workspace; float64: the step loop's states
        return (rand(3, 2, 4), rand(8, 4), rand(8, 2), rand(8), rand(8), rand(2, 2), rand(2, 2)), {"reverse": False}
    if name == "linear_chain":  # the layer outputs between the layers
        return (rand(5, 3), rand(4, 3), rand(4), rand(4, 4), rand(4), rand(2, 4), rand(2)), {
            "activations": ("relu", "tanh", None)
        }
    raise AssertionError(f"add a case for {name}")


def test_the_fused_layers_keep_residuals():
    assert {"layer_norm", "scaled_dot_product_attention", "cross_entropy"} <= set(WITH_RESIDUALS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", WITH_RESIDUALS)
def test_residuals_give_the_recomputed_gradients_bit_for_bit(name, dtype):
    prim = PRIMS[name]
    args, params = _case(name, dtype)
    xs = [tg.Tensor(a, requires_grad=a.is_floating_point()) for a in args]  # class indices: constants
    with tg.Tape() as tape:
        result = prim(*xs, **params)
        out = flat_out(result)  # a multi-output primitive's outputs as one (recorded: reshapes, cat)
    record = tape.records[0]
    assert len(record.args) > len(record.inputs)  # the residuals ride after the inputs
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    floats = [x for x in xs if x.requires_grad]
    got = tape.gradient(out, floats, grad_output=tg.Tensor(g))
    fresh = prim.forward(*args, **params)
    assert torch.equal(flat_out(fresh), out.data)  # the same output as the plain forward
    if prim.multi:  # each output's part of g, as cat's and reshape's rules hand it on
        g = tuple(p.reshape(o.shape) for p, o in zip(g.split([o.numel() for o in fresh]), fresh))
    want = prim.fast_vjp(g, fresh, *args, **params)  # no residuals: the rule recomputes them
    for a, b in zip(got, [w for w, x in zip(want, xs) if x.requires_grad]):
        assert torch.equal(a.data, b)


@pytest.mark.parametrize("name", WITH_RESIDUALS)
def test_a_tape_that_keeps_everything_keeps_no_residuals(name):  # tg.trace's and blame's tapes
    args, params = _case(name, torch.float64)
    xs = [tg.Tensor(a, requires_grad=a.is_floating_point()) for a in args]
    with keep_all(tg.Tape()) as tape:
        PRIMS[name](*xs, **params)
    assert [len(r.args) for r in tape] == [len(r.inputs) for r in tape]


def test_a_user_primitive_with_residuals():
    calls = []

    def fast(g, out, x, *saved):
        calls.append(len(saved))
        twice = saved[0] if saved else 2 * x.exp()
        return (g * twice / 2,)

    prim = tg.primitive(
        "test_residual_exp",
        torch.exp,
        [lambda g, out, x: g * out],
        fast_vjp=fast,
        saves=["output"],
        residuals=lambda x: (x.exp(), (2 * x.exp(),)),
    )
    x = tg.Tensor(torch.tensor([0.5, -1.0]), requires_grad=True)
    with tg.Tape() as tape:
        y = prim(x).sum()
    (gx,) = tape.gradient(y, [x])
    assert calls == [1] and torch.allclose(gx.data, x.data.exp())
    with tg.Tape() as outer:  # higher order: the reference rule, which never sees residuals
        with tg.Tape() as inner:
            y = prim(x).sum()
        (gx,) = inner.gradient(y, [x])
        total = gx.sum()
    (gxx,) = outer.gradient(total, [x])
    # the inner replay ran the reference rule; the outer one replays the forward's record fast, with residuals
    assert calls == [1, 1] and torch.allclose(gxx.data, x.data.exp())


def test_residuals_need_a_fast_rule():
    with pytest.raises(TypeError, match="residuals of 'test_residual_bad'"):
        tg.primitive("test_residual_bad", torch.exp, [lambda g, out, x: g * out], residuals=lambda x: (x.exp(), ()))
