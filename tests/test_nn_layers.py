"""Layers against torch.nn in float64: same weights give the same outputs and gradients."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nn
import tapegrad as tg
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
