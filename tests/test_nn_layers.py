"""Layers against torch.nn in float64: same weights give the same outputs and gradients."""

import copy
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nn
import tapegrad as tg
import viz
from tapegrad.engine.errors import ShapeError
from tapegrad.testing import tensors

TOL = dict(rtol=1e-10, atol=1e-12)


def assert_parity(ours, ref, inputs, grad_output=None):
    """Outputs and gradients (inputs and parameters) of ``ours`` equal ``ref``'s."""
    xs = [tg.Tensor(x.clone(), requires_grad=True) for x in inputs]
    params = list(ours.parameters())
    with tg.Tape() as tape:
        out = ours(*xs)
    g = torch.randn(out.shape, dtype=torch.float64) if grad_output is None else grad_output
    grads = tape.gradient(out, xs + params, grad_output=tg.Tensor(g))
    txs = [x.clone().requires_grad_(True) for x in inputs]
    tout = ref(*txs)
    tgrads = torch.autograd.grad(tout, txs + list(ref.parameters()), g)
    torch.testing.assert_close(out.data, tout.detach(), **TOL)
    assert len(grads) == len(tgrads)
    for a, b in zip(grads, tgrads):
        torch.testing.assert_close(a.data, b, **TOL)


@settings(max_examples=25, deadline=None)
@given(
    fin=st.integers(1, 6),
    fout=st.integers(1, 6),
    lead=st.sampled_from([(1,), (4,), (2, 3)]),
    bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_linear_matches_torch(fin, fout, lead, bias, seed, data):
    torch.manual_seed(seed)
    ref = torch.nn.Linear(fin, fout, bias=bias, dtype=torch.float64)
    torch.manual_seed(seed)
    ours = nn.Linear(fin, fout, bias=bias, dtype=torch.float64)
    # torch's default initialisation, draw for draw
    assert torch.equal(ours.weight.data, ref.weight.detach())
    if bias:
        assert torch.equal(ours.bias.data, ref.bias.detach())
    x = data.draw(tensors(shape=lead + (fin,), low=-3, high=3)).data
    assert_parity(ours, ref, [x])


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["ReLU", "Tanh", "Sigmoid"]),
    x=tensors(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), low=-4, high=4, away_from=(0.0,)),
)
def test_activations_match_torch(kind, x):
    assert_parity(getattr(nn, kind)(), getattr(torch.nn, kind)(), [x.data])


@settings(max_examples=15, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    act=st.sampled_from(["ReLU", "Tanh", "Sigmoid"]),
    batch=st.integers(1, 5),
    data=st.data(),
)
def test_sequential_mlp_matches_torch(widths, act, batch, data):
    layers, ref_layers = [], []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b, dtype=torch.float64), getattr(nn, act)()]
        ref_layers += [torch.nn.Linear(a, b, dtype=torch.float64), getattr(torch.nn, act)()]
    ours, ref = nn.Sequential(*layers), torch.nn.Sequential(*ref_layers)
    ours.load_state_dict(ref.state_dict())
    x = data.draw(tensors(shape=(batch, widths[0]), low=-2, high=2)).data
    assert_parity(ours, ref, [x])


def test_linear_inits():
    torch.manual_seed(0)
    he = nn.Linear(400, 300, init="he")
    assert torch.equal(he.bias.data, torch.zeros(300))
    assert abs(he.weight.data.std().item() - (2 / 400) ** 0.5) < 0.003
    xavier = nn.Linear(400, 300, init="xavier", gain=6.0)  # seed 000's gain
    assert abs(xavier.weight.data.std().item() - 6.0 * (2 / 700) ** 0.5) < 0.01
    custom = nn.Linear(3, 2, init=lambda w: nn.init.constant_(w, 0.5))
    assert torch.equal(custom.weight.data, torch.full((2, 3), 0.5))
    no_bias = nn.Linear(3, 2, bias=False)
    assert no_bias.bias is None and [n for n, _ in no_bias.named_parameters()] == ["weight"]


def test_linear_accepts_tg_and_torch_inputs():
    lin = nn.Linear(2, 3)
    x = torch.randn(4, 2)
    assert torch.equal(lin(x).data, lin(tg.Tensor(x)).data)
    assert isinstance(lin(x), tg.Tensor)


def test_linear_uses_the_fused_primitive():
    lin = nn.Linear(2, 3)
    with tg.Tape() as tape:
        lin(torch.randn(4, 2))
    assert [r.primitive.name for r in tape] == ["linear"]


# --- nn.Sequential(..., fuse=True): runs of Linear (+ activation) as one linear_chain record --------------
def _fusable(fuse: bool) -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4, bias=False), nn.Tanh(), nn.Linear(4, 2), nn.Sigmoid(),
        nn.Linear(2, 2), fuse=fuse,
    )  # fmt: skip


def _train_records(model: nn.Sequential, x: tg.Tensor) -> tuple[Any, list, list[str], list[str]]:
    with tg.Tape() as tape:
        out = model(x)
        loss = (out * out).sum()
    names, scopes = [r.primitive.name for r in tape], [repr(r.scope) for r in tape]
    return out, tape.gradient(loss, [x, *model.parameters()]), names, scopes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(6, 3), (2, 4, 3), (3,)])
def test_fused_sequential_gives_the_same_values_and_gradients_bit_for_bit(dtype, shape):
    x = tg.Tensor(torch.randn(shape, dtype=dtype), requires_grad=True)
    out, grads, names, _ = _train_records(_fusable(False).to(dtype), x)
    fout, fgrads, fnames, fscopes = _train_records(_fusable(True).to(dtype), x)
    assert torch.equal(out.data, fout.data)
    assert all(torch.equal(a.data, b.data) for a, b in zip(grads, fgrads))
    assert names[:7] == ["linear", "relu", "linear", "tanh", "linear", "sigmoid", "linear"]
    assert fnames == ["linear_chain", *names[7:]] and fscopes[0] == "Sequential"  # one record, the container's


def test_fused_sequential_matches_torch_and_finite_differences_in_float64():
    model = _fusable(True).to(torch.float64)
    ref = torch.nn.Sequential(*[_torch_twin(m) for m in model])
    x = torch.randn(4, 3, dtype=torch.float64)
    xt = tg.Tensor(x.clone(), requires_grad=True)
    _, grads, names, _ = _train_records(model, xt)
    xr = x.clone().requires_grad_(True)
    loss = (ref(xr) ** 2).sum()
    want = torch.autograd.grad(loss, [xr, *ref.parameters()])
    assert names[0] == "linear_chain"
    for a, b in zip(grads, want):
        torch.testing.assert_close(a.data, b, rtol=1e-12, atol=1e-12)
    assert tg.gradcheck(lambda v: (model(v) ** 2).sum(), [tg.Tensor(x, requires_grad=True)])


def _torch_twin(m: nn.Module) -> torch.nn.Module:
    if isinstance(m, nn.Linear):
        twin = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None, dtype=torch.float64)
        with torch.no_grad():
            twin.weight.copy_(m.weight.data)
            if m.bias is not None:
                twin.bias.copy_(m.bias.data)
        return twin
    return {nn.ReLU: torch.nn.ReLU, nn.Tanh: torch.nn.Tanh, nn.Sigmoid: torch.nn.Sigmoid}[type(m)]()


def test_fused_sequential_second_order_matches_the_unfused_one():
    x = tg.Tensor(torch.randn(4, 3, dtype=torch.float64), requires_grad=True)
    hvps = []
    for fuse in (False, True):
        model = _fusable(fuse).to(torch.float64)
        with tg.Tape() as outer:
            with tg.Tape() as inner:
                loss = (model(x) ** 2).sum()
            (gx,) = inner.gradient(loss, [x])
            total = (gx * gx).sum()
        hvps.append(outer.gradient(total, [x, *model.parameters()]))
    for a, b in zip(*hvps):
        torch.testing.assert_close(a.data, b.data, rtol=1e-12, atol=1e-12)


def _names(model: nn.Module, x: Any) -> list[str]:
    with tg.Tape() as tape:
        model(x)
    return [r.primitive.name for r in tape]


def test_the_fusion_plan_follows_changes_after_the_first_call():
    model, x = _fusable(True), tg.Tensor(torch.randn(2, 3))
    assert _names(model, x) == ["linear_chain"]
    handle = model[3].register_forward_pre_hook(lambda m, args: None)
    assert _names(model, x) == ["linear_chain", "tanh", "linear_chain"]
    handle.remove()
    assert _names(model, x) == ["linear_chain"]
    setattr(model, "2", nn.Linear(5, 4))  # a new child, then a new weight: the record reads the current ones
    model[6].weight = nn.Parameter(torch.zeros(2, 2))
    with tg.Tape() as tape:
        out = model(x)
    assert tape.records[0].inputs[3] is model[2].weight and torch.equal(out.data, model[6].bias.data.expand(2, 2))
    twin = copy.deepcopy(model)
    with tg.Tape() as tape:
        twin(x)
    assert tape.records[0].inputs[1] is twin[0].weight and twin[0].weight is not model[0].weight


def test_fusion_steps_aside_for_hooks_replaced_forwards_and_subclasses():
    model = _fusable(True)
    model(tg.Tensor(torch.randn(2, 3)))  # called once first: the hook and the forward added below are seen
    seen = []
    model[1].register_forward_hook(lambda m, args, out: seen.append(out))
    model[4].forward = lambda x: tg.linear(x, model[4].weight, model[4].bias)
    with tg.Tape() as tape:
        model(tg.Tensor(torch.randn(2, 3)))
    names = [r.primitive.name for r in tape]
    # the hooked ReLU ends the first run (its Linear alone: called as usual); the replaced forward another
    assert names == ["linear", "relu", "linear_chain", "linear", "sigmoid", "linear"] and len(seen) == 1
    assert [repr(r.scope) for r in tape][:2] == ["0 (Linear)", "1 (ReLU)"]
    assert "fuse" not in repr(model) and not nn.Sequential(nn.Linear(2, 2)).fuse

    class MyLinear(nn.Linear):
        pass

    mine = nn.Sequential(MyLinear(2, 2), nn.ReLU(), nn.Linear(2, 2), fuse=True)
    with tg.Tape() as tape:
        mine(tg.Tensor(torch.randn(2, 2)))
    assert [r.primitive.name for r in tape] == ["linear", "relu", "linear"]


def test_a_fused_run_that_fails_lets_the_layer_at_fault_raise():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2), fuse=True)  # 4 features into 5
    with pytest.raises(ShapeError, match=r"2 \(Linear\) expects inputs with 5 features"):
        model(tg.Tensor(torch.randn(2, 3)))
    with tg.Tape() as tape:  # a raw torch input is wrapped, as Linear does
        out = _fusable(True)(torch.randn(2, 3))
    assert isinstance(out, tg.Tensor) and [r.primitive.name for r in tape] == ["linear_chain"]


def test_a_fused_record_counts_and_keeps_the_layer_outputs():
    model = _fusable(True)
    x = tg.Tensor(torch.randn(2, 3))
    with tg.Tape() as tape:
        loss = model(x).sum()
    (chain, total) = tape.records
    assert chain.params == {"activations": ("relu", "tanh", "sigmoid", None)} and len(chain.inputs) == 9
    assert len(chain.args) == 9 + 3  # the three layer outputs between the layers, kept as residuals
    assert "linear_chain" in repr(chain) and total.primitive.name == "sum"
    tape.backward(loss)
    assert all(p.grad is not None for p in model.parameters())


def test_explain_shows_a_fused_run_layer_by_layer():
    model = _fusable(True)
    with tg.Tape(persistent=True) as tape:
        loss = model(tg.Tensor(torch.randn(2, 3))).sum()
    text = str(viz.explain(tape, loss))
    assert "linear_chain(" in text and "dL/d0.weight = g₁ᵀ a₀" in text and "dL/d6.bias = Σ_batch g₄" in text
