"""RNN/GRU/LSTM and their cells against torch.nn in float64: same weight names and order, outputs,
final states and gradients (inputs, initial states, every weight), batch_first, bidirectional, stacks."""

from __future__ import annotations

import pytest
import torch
from parity import TOL, Picked, assert_parity, ported, rand

import nn
import tapegrad as tg

TNN = torch.nn

CONFIGS = [
    dict(),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=2, batch_first=True, bias=False),
    dict(bidirectional=True, batch_first=True),
]


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("options", CONFIGS, ids=str)
def test_recurrent_layers_match_torch(kind, options):
    ref = getattr(TNN, kind)(3, 4, **options)
    ours = ported(getattr(nn, kind)(3, 4, **options), ref)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert repr(ours) == repr(ref)
    x = rand(2, 5, 3) if options.get("batch_first") else rand(5, 2, 3)
    for index in (0, 1):  # the gradient from the outputs, then from the final state(s)
        pick = (lambda o: o[1][0]) if kind == "LSTM" and index == 1 else None
        if pick is None:
            assert_parity(ours, ref, x, out_index=index)
        else:
            assert_parity(Picked(ours, pick), Picked(ref, pick), x)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_initial_states_and_unbatched_inputs(kind):
    ref = getattr(TNN, kind)(3, 4, num_layers=2, bidirectional=True)
    ours = ported(getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True), ref)
    h0 = rand(4, 2, 4, seed=5)
    hx = (h0, rand(4, 2, 4, seed=6)) if kind == "LSTM" else h0
    x = rand(3, 2, 3, seed=7)
    xs = [tg.Tensor(t.clone(), requires_grad=True) for t in (x, *(hx if kind == "LSTM" else (hx,)))]
    with tg.Tape() as tape:
        out, state = ours(xs[0], (xs[1], xs[2]) if kind == "LSTM" else xs[1])
        total = (out * out).sum() + ((state[1] if kind == "LSTM" else state) ** 2).sum()
    grads = tape.gradient(total, xs)
    refs = [t.clone().requires_grad_() for t in (x, *(hx if kind == "LSTM" else (hx,)))]
    r_out, r_state = ref(refs[0], (refs[1], refs[2]) if kind == "LSTM" else refs[1])
    r_total = (r_out * r_out).sum() + ((r_state[1] if kind == "LSTM" else r_state) ** 2).sum()
    for ours_g, ref_g in zip(grads, torch.autograd.grad(r_total, refs)):
        torch.testing.assert_close(ours_g.data, ref_g, **TOL)
    unbatched = x[:, 0]
    hx1 = (h0[:, 0], hx[1][:, 0]) if kind == "LSTM" else h0[:, 0]
    o, s = ours(unbatched, hx1)
    r_o, r_s = ref(unbatched, hx1)
    torch.testing.assert_close(o.data, r_o.detach(), **TOL)
    torch.testing.assert_close(
        (s[0] if kind == "LSTM" else s).data, (r_s[0] if kind == "LSTM" else r_s).detach(), **TOL
    )
    with pytest.raises(tg.ShapeError, match="h_0"):
        ours(x, (h0[:2], h0[:2]) if kind == "LSTM" else h0[:2])


def test_rnn_relu_dropout_and_argument_errors():
    ref = TNN.RNN(3, 4, 2, "relu")
    ours = ported(nn.RNN(3, 4, 2, "relu"), ref)
    assert repr(ours) == repr(ref)
    assert_parity(ours, ref, rand(4, 2, 3).abs(), out_index=0)
    drop = nn.LSTM(3, 4, num_layers=2, dropout=0.5).double()
    x = rand(4, 2, 3)
    a, b = drop(x)[0], drop(x)[0]
    assert not torch.equal(a.data, b.data)  # dropout between the layers in training
    drop.eval()
    assert torch.equal(drop(x)[0].data, drop(x)[0].data)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(tg.ShapeError, match="expected input"):
        nn.GRU(3, 4)(rand(2, 2, 5))


@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell", "LSTMCell"])
def test_cells_match_torch(kind):
    ref = getattr(TNN, kind)(3, 4)
    ours = ported(getattr(nn, kind)(3, 4), ref)
    assert repr(ours) == repr(ref)
    x, h = rand(2, 3), rand(2, 4, seed=1)
    state = (h, rand(2, 4, seed=2)) if kind == "LSTMCell" else h
    if kind == "LSTMCell":
        assert_parity(Picked(ours, lambda o: o[1]), Picked(ref, lambda o: o[1]), x)
        out, ref_out = ours(x, state)[0], ref(x, state)[0]
        unbatched, ref_unbatched = ours(x[0])[0], ref(x[0])[0]
    else:
        assert_parity(ours, ref, x, h)
        out, ref_out = ours(x), ref(x)
        unbatched, ref_unbatched = ours(x[0], h[0]), ref(x[0], h[0])
    torch.testing.assert_close(out.data, ref_out.detach(), **TOL)
    torch.testing.assert_close(unbatched.data, ref_unbatched.detach(), **TOL)


def test_same_seed_gives_torchs_initial_weights():
    torch.manual_seed(0)
    ours = nn.LSTM(3, 4, num_layers=2)
    torch.manual_seed(0)
    ref = TNN.LSTM(3, 4, num_layers=2)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref.state_dict().values()))


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_time_loop_is_one_record_per_layer_and_direction(kind):
    layer = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True)
    counts = []
    for steps in (2, 7):
        with tg.Tape() as tape:
            layer(tg.Tensor(torch.rand(steps, 2, 3)))
        names = [r.primitive.name for r in tape]
        assert names.count("lstm_layer" if kind == "LSTM" else f"{kind.lower()}_recurrence") == 4
        counts.append(len(names))
    assert counts[0] == counts[1]  # no record per time step


@pytest.mark.parametrize("batch_first", [False, True])
def test_an_lstm_layer_is_one_record_giving_output_h_n_and_c_n(batch_first):
    # lstm_layer is a multi-output primitive: the output and both final states come out of its one record
    layer = nn.LSTM(3, 4, batch_first=batch_first)
    with tg.Tape() as tape:
        out, (h, c) = layer(tg.Tensor(torch.rand(2, 5, 3), requires_grad=True))
    assert [r.primitive.name for r in tape] == ["lstm_layer"]
    assert tape.records[0].outputs == (out, h, c)
    batch = 2 if batch_first else 5
    assert (tuple(out.shape), tuple(h.shape), tuple(c.shape)) == ((2, 5, 4), (1, batch, 4), (1, batch, 4))


@pytest.mark.parametrize("options", CONFIGS, ids=str)
def test_lstm_cell_state_gradients_match_torch(options):
    """The gradient that enters through c_n (lstm_layer's third output)."""
    ref = TNN.LSTM(3, 4, **options)
    ours = ported(nn.LSTM(3, 4, **options), ref)
    x = rand(2, 5, 3) if options.get("batch_first") else rand(5, 2, 3)
    assert_parity(Picked(ours, _cell_and_output), Picked(ref, _cell_and_output), x)


def _cell_and_output(o):
    return o[1][1] * 1.5 + o[0].sum() * 0.1


@pytest.mark.parametrize("options", CONFIGS[:2], ids=str)
def test_relu_rnn_matches_torch(options):
    ref = TNN.RNN(3, 4, nonlinearity="relu", **options)
    ours = ported(nn.RNN(3, 4, nonlinearity="relu", **options), ref)
    assert_parity(ours, ref, rand(5, 2, 3), out_index=0)
    cell_ref = TNN.RNNCell(3, 4, nonlinearity="relu")
    assert_parity(ported(nn.RNNCell(3, 4, nonlinearity="relu"), cell_ref), cell_ref, rand(2, 3), rand(2, 4, seed=1))
