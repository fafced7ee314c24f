"""nn.LSTM on oneDNN's layer kernels (tg.lstm_layer in float32) and with ``proj_size``, against torch.nn.LSTM.

float32 runs aten's ``mkldnn_rnn_layer`` and its backward: its gradients are checked against the
reference rule in float64 and against torch's own float32 LSTM (the same kernels). The step loop
that serves float64 and a disabled oneDNN is checked in float64 by tests/test_nn_recurrent.py and
the registry specs; ``proj_size`` against torch.nn.LSTM in float64 here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from parity import TOL, Picked, assert_parity, ported, rand
from torch._subclasses.fake_tensor import FakeTensorMode

import nn
import tapegrad as tg
from tapegrad.ops import recurrent_lstm_layer as layer_op

TNN = torch.nn
F32 = dict(rtol=2e-5, atol=2e-6)


def _layer_args(steps: int, batch: int, width: int, size: int, bias: tuple[bool, bool], seed: int) -> list:
    gen = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * scale

    x, w_ih, w_hh = r(steps, batch, width), r(4 * size, width, scale=0.5), r(4 * size, size, scale=0.5)
    b_ih, b_hh = (r(4 * size, scale=0.3) if b else None for b in bias)
    return [x, w_ih, w_hh, b_ih, b_hh, r(batch, size), r(batch, size)]


@contextlib.contextmanager
def _onednn_disabled() -> Iterator[None]:
    """torch.backends.mkldnn.enabled off (its ``flags`` context also sets TF32 flags, with a warning)."""
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = True


def test_onednn_runs_float32_here():
    """The library's condition for the kernel holds on this CPU build (else the float32 tests check the loop)."""
    assert layer_op._on_kernel(torch.zeros(1, 1, 1))
    assert not layer_op._on_kernel(torch.zeros(1, 1, 1, dtype=torch.float64))
    with _onednn_disabled():
        assert not layer_op._on_kernel(torch.zeros(1, 1, 1))
    with FakeTensorMode():  # a step captured for inductor: the kernel as an opaque op
        assert layer_op._on_kernel(torch.zeros(1, 1, 1))


@settings(max_examples=25, deadline=None)
@given(
    steps=st.integers(1, 4), batch=st.integers(1, 3), width=st.integers(1, 3), size=st.integers(1, 3),
    bias=st.tuples(st.booleans(), st.booleans()), reverse=st.booleans(), batch_first=st.booleans(),
    seed=st.integers(0, 2**16), used=st.sampled_from([(1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1)]),
)  # fmt: skip
def test_kernel_gradients_equal_the_reference_rule(steps, batch, width, size, bias, reverse, batch_first, seed, used):
    """oneDNN's float32 forward and backward against the time-major reference rule and forward in float64
    (batch_first: the same layer on (N, T, I), its output and x's gradient the reference's transposed), with
    gradients entering through the outputs in ``used`` (the others get None: the kernel's backward skips them)."""
    args = _layer_args(steps, batch, width, size, bias, seed)
    given_x = args[0].transpose(0, 1).contiguous() if batch_first else args[0]
    leaves = [None if a is None else tg.Tensor(a.clone(), requires_grad=True) for a in [given_x, *args[1:]]]
    gen = torch.Generator().manual_seed(seed + 1)
    with tg.Tape() as tape:
        outs = tg.lstm_layer(*leaves, reverse=reverse, batch_first=batch_first)
        gs = [torch.randn(o.shape, generator=gen) if u else None for o, u in zip(outs, used)]
        loss = sum((o * tg.Tensor(g)).sum() for o, g in zip(outs, gs) if g is not None)
    record = tape.records[0]
    assert record.primitive.name == "lstm_layer" and record.outputs == outs
    assert record.args[-1].dtype == torch.uint8  # oneDNN's workspace, kept as the residual
    sources = [a for a in leaves if a is not None]
    grads = tape.gradient(loss, sources)
    doubles = [None if a is None else a.double() for a in args]
    ref_outs = layer_op._forward(*doubles, reverse=reverse)
    if batch_first and gs[0] is not None:
        gs[0] = gs[0].transpose(0, 1)
    with tg.Tape():  # the reference rule on tg.Tensors, as a higher-order replay runs it
        wrapped = [None if a is None else tg.Tensor(a) for a in doubles]
        g_ref = tuple(None if g is None else tg.Tensor(g.double()) for g in gs)
        ref = layer_op._vjp(g_ref, tuple(map(tg.Tensor, ref_outs)), *wrapped, reverse=reverse)
    expected = [r.data for r, a in zip(ref, doubles) if a is not None]  # one gradient per input, in input order
    ref_outs = list(ref_outs)
    if batch_first:
        ref_outs[0], expected[0] = ref_outs[0].transpose(0, 1), expected[0].transpose(0, 1)
    for ours, theirs in zip(outs, ref_outs):
        torch.testing.assert_close(ours.data, theirs.float(), **F32)
    for ours, theirs in zip(grads, expected):
        torch.testing.assert_close(ours.data, theirs.float(), **F32)


def test_bfloat16_runs_the_kernel_within_bfloat16s_rounding_of_float32():
    """bfloat16 (8 significant bits: a relative step of 2**-8) on oneDNN's kernel: the output and every gradient
    within 2 % (relative to the float32 result's largest value) of the float32 layer on the same values."""
    args = [a if a is None else a.bfloat16().float() for a in _layer_args(6, 3, 4, 5, (True, True), 7)]
    g = torch.randn(7, 3, 5, generator=torch.Generator().manual_seed(8)).bfloat16().float()
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        leaves = [tg.Tensor(a.to(dtype), requires_grad=True) for a in args]
        with tg.Tape() as tape:
            out, h, c = tg.lstm_layer(*leaves)
            loss = (out * tg.Tensor(g[:6].to(dtype))).sum() + (c * tg.Tensor(g[6:].to(dtype))).sum()
        record = tape.records[0]
        assert record.args[-1].dtype == torch.uint8  # the kernel ran (its workspace), not the loop
        grads = tape.gradient(loss, leaves)
        assert out.dtype == dtype and all(gr.dtype == dtype for gr in grads)
        results[dtype] = [out.data.float(), h.data.float(), c.data.float(), *(gr.data.float() for gr in grads)]
    for low, high in zip(results[torch.bfloat16], results[torch.float32]):
        assert (low - high).abs().max() <= 0.02 * high.abs().max()  # 0.6 % seen


def test_a_trace_record_without_the_workspace_runs_the_kernel_again(monkeypatch):
    """tg.trace keeps every input and no residuals: the fast rule makes the workspace itself."""
    trains: list[bool] = []
    kernel = layer_op._kernel
    monkeypatch.setattr(layer_op, "_kernel", lambda *a: trains.append(a[-1]) or kernel(*a))
    args = _layer_args(3, 2, 3, 4, (True, True), 0)
    leaves = [tg.Tensor(a.clone(), requires_grad=True) for a in args]
    weight = tg.Tensor(torch.randn(4, 2, 4))

    def loss():
        out, _, c = tg.lstm_layer(*leaves)
        return (out * weight[:3]).sum() + (c * weight[3:]).sum()

    with tg.Tape() as tape:
        eager = loss()
    tape.backward(eager)
    want = [x.grad.data.clone() for x in leaves]
    assert trains == [True]  # the eager record: the forward kept the workspace, the rule reused it
    step = tg.trace(loss, check=False, executor="python")
    for _ in range(2):
        for x in leaves:
            x.grad = None
        step()
        for x, w in zip(leaves, want):
            torch.testing.assert_close(x.grad.data, w)
    assert trains[1:3] == [False, True]  # traced: the forward alone, then the rule ran the kernel for its workspace


CONFIGS = [
    dict(),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=2, batch_first=True, bias=False),
    dict(bidirectional=True, batch_first=True),
]


@pytest.mark.parametrize("options", CONFIGS, ids=str)
def test_float32_lstm_matches_torchs(options):
    """The same kernels as torch's float32 CPU LSTM: outputs, final states and every gradient."""
    torch.manual_seed(0)
    ref = TNN.LSTM(3, 5, **options)
    ours = nn.LSTM(3, 5, **options)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 6, 3) if options.get("batch_first") else torch.randn(6, 2, 3)
    h0, c0 = torch.randn(2, *ref(x)[1][0].shape).unbind(0)
    xs = [tg.Tensor(t.clone(), requires_grad=True) for t in (x, h0, c0)]
    with tg.Tape() as tape:
        out, (h, c) = ours(xs[0], (xs[1], xs[2]))
        total = (out * out).sum() + (h * c).sum() + c.sum()
    grads = tape.gradient(total, xs + list(ours.parameters()))
    refs = [t.clone().requires_grad_() for t in (x, h0, c0)]
    r_out, (r_h, r_c) = ref(refs[0], (refs[1], refs[2]))
    r_total = (r_out * r_out).sum() + (r_h * r_c).sum() + r_c.sum()
    r_grads = torch.autograd.grad(r_total, refs + list(ref.parameters()))
    for a, b in ((out, r_out), (h, r_h), (c, r_c)):
        torch.testing.assert_close(a.data, b.detach(), **F32)
    for ours_g, ref_g in zip(grads, r_grads):
        torch.testing.assert_close(ours_g.data, ref_g, **F32)


def test_disabled_onednn_gives_the_same_float32_gradients_from_the_loop():
    torch.manual_seed(1)
    layer = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3)

    def grads() -> list[torch.Tensor]:
        leaf = tg.Tensor(x.clone(), requires_grad=True)
        with tg.Tape() as tape:
            out, (h, c) = layer(leaf)
            total = (out * out).sum() + c.sum()
        return [gr.data for gr in tape.gradient(total, [leaf, *layer.parameters()])]

    fused = grads()
    with _onednn_disabled():
        looped = grads()
    for a, b in zip(fused, looped):
        torch.testing.assert_close(a, b, **F32)


# --- proj_size ------------------------------------------------------------------------------------
PROJ_CONFIGS = [
    dict(proj_size=2),
    dict(proj_size=3, num_layers=2, bidirectional=True),
    dict(proj_size=1, num_layers=2, batch_first=True, bias=False),
    dict(proj_size=2, bidirectional=True, batch_first=True),
]


def _output_and_cell(o):
    return o[0] * 0.7 + o[1][1].sum() * 0.2 + o[1][0].sum() * 0.3


@pytest.mark.parametrize("options", PROJ_CONFIGS, ids=str)
def test_proj_size_matches_torch(options):
    ref = TNN.LSTM(3, 4, **options)
    ours = ported(nn.LSTM(3, 4, **options), ref)
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in ref.named_parameters()
    ]
    assert repr(ours) == repr(ref)
    x = rand(2, 5, 3) if options.get("batch_first") else rand(5, 2, 3)
    assert_parity(ours, ref, x, out_index=0)
    assert_parity(Picked(ours, _output_and_cell), Picked(ref, _output_and_cell), x)


def test_proj_size_initial_states_unbatched_and_errors():
    ref = TNN.LSTM(3, 5, proj_size=2, num_layers=2)
    ours = ported(nn.LSTM(3, 5, proj_size=2, num_layers=2), ref)
    h0, c0, x = rand(2, 3, 2, seed=1), rand(2, 3, 5, seed=2), rand(4, 3, 3, seed=3)
    xs = [tg.Tensor(t.clone(), requires_grad=True) for t in (x, h0, c0)]
    with tg.Tape() as tape:
        out, (h, c) = ours(xs[0], (xs[1], xs[2]))
        total = (out * out).sum() + (h * h).sum() + (c * c).sum()
    assert tuple(h.shape) == (2, 3, 2) and tuple(c.shape) == (2, 3, 5)
    refs = [t.clone().requires_grad_() for t in (x, h0, c0)]
    r_out, (r_h, r_c) = ref(refs[0], (refs[1], refs[2]))
    r_total = (r_out * r_out).sum() + (r_h * r_h).sum() + (r_c * r_c).sum()
    for a, b in zip(tape.gradient(total, xs), torch.autograd.grad(r_total, refs)):
        torch.testing.assert_close(a.data, b, **TOL)
    o, (h1, c1) = ours(x[:, 0], (h0[:, 0], c0[:, 0]))
    r_o, (r_h1, r_c1) = ref(x[:, 0], (h0[:, 0], c0[:, 0]))
    for a, b in ((o, r_o), (h1, r_h1), (c1, r_c1)):
        torch.testing.assert_close(a.data, b.detach(), **TOL)
    with pytest.raises(tg.ShapeError, match="h_0"):
        ours(x, (c0, c0))  # h_0 must have proj_size features
    with pytest.raises(ValueError, match="smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="positive integer or zero"):
        nn.LSTM(3, 4, proj_size=-1)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        nn.GRU(3, 4, proj_size=2)


def test_proj_size_initial_weights_follow_torchs_seed():
    torch.manual_seed(0)
    ours = nn.LSTM(3, 4, num_layers=2, proj_size=2)
    torch.manual_seed(0)
    ref = TNN.LSTM(3, 4, num_layers=2, proj_size=2)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref.state_dict().values()))
