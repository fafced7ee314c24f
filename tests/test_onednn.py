"""oneDNN's kernels in a step compiled by inductor (tapegrad/ops/onednn.py): tg.trace's inductor executor
captures linear's forward and input gradient as ``tapegrad::linear`` and an LSTM layer as
``tapegrad::lstm_layer`` and its backward, which inductor calls as they are; the compiled step trains the
eager weights. One compile per model (inductor's on-disk cache makes a rerun cheap)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import nn
import tapegrad as tg
from tapegrad.ops import linalg, onednn
from tapegrad.tracing import replay_inductor

OPS = torch.ops.tapegrad


def _train(make: Callable[[], tuple[nn.Module, Callable]], data: list, executor: str | None) -> tuple[list, nn.Module]:
    """Adam steps of ``make()``'s model and loss on ``data``, eager or traced on ``executor``."""
    torch.manual_seed(0)
    model, loss = make()
    opt = nn.Adam(model.parameters(), lr=0.05)
    step = tg.trace(loss, optimizer=opt, executor=executor) if executor else None
    losses = []
    for x, y in data:
        if step is not None:
            losses.append(step(tg.Tensor(x), tg.Tensor(y)).item())
            continue
        with tg.Tape() as tape:
            value = loss(tg.Tensor(x), tg.Tensor(y))
        tape.backward(value)
        opt.step()
        opt.zero_grad()
        losses.append(value.item())
    if step is not None:
        (entry,) = step._entries.values()
        assert entry.fast.compiled is not None and not entry.fast.refused  # compiled, and checked against eager
    return losses, model


def _compiled_graph(monkeypatch: pytest.MonkeyPatch, make: Callable, data: list) -> torch.fx.GraphModule:
    """The graph inductor compiled for ``make()``'s traced step, after checking that it trains the eager weights."""
    graphs, real = [], replay_inductor._compiled
    monkeypatch.setattr(
        replay_inductor, "_compiled", lambda gm, inputs, cpp: graphs.append(gm) or real(gm, inputs, cpp)
    )
    (eager_losses, eager), (losses, traced) = _train(make, data, None), _train(make, data, "inductor")
    assert losses == pytest.approx(eager_losses, rel=1e-5)
    for p, q in zip(eager.parameters(), traced.parameters()):
        torch.testing.assert_close(q.data, p.data, rtol=1e-5, atol=1e-6)
    (gm,) = graphs
    return gm


def _targets(gm: torch.fx.GraphModule) -> list:
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


def test_linear_s_forward_and_input_gradient_are_onednn_s_matmul_in_a_compiled_step(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    data = [(torch.randn(2, 5, 6, generator=gen), torch.randn(2, 5, 3, generator=gen)) for _ in range(4)]

    def make() -> tuple[nn.Module, Callable]:
        model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 3))
        return model, lambda x, y: ((model(x) - y) ** 2).mean()

    monkeypatch.setattr(linalg, "ONEDNN_FROM_MACS", 1)  # these products are small
    targets = _targets(_compiled_graph(monkeypatch, make, data))
    # two forwards and the second layer's input gradient (x needs none); the weight gradients on mm
    assert targets.count(OPS.linear.default) == 3
    assert targets.count(torch.ops.aten.mm.default) == 2
    assert torch.ops.aten.addmm.default not in targets


def test_onednn_s_linear_is_linear_and_only_for_large_float32_products_captured_on_the_cpu(monkeypatch):
    from torch._subclasses.fake_tensor import FakeTensorMode

    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(4, 3, 5, generator=g), torch.randn(7, 5, generator=g), torch.randn(7, generator=g)
    torch.testing.assert_close(OPS.linear(x, w, b), torch.nn.functional.linear(x, w, b))
    torch.testing.assert_close(OPS.linear(x, w.t().t(), None), x @ w.t())
    assert not linalg._on_onednn(x, w)  # eager: aten's linear, as torch.nn.Linear
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fx, fw = mode.from_tensor(x), mode.from_tensor(w)
        assert not linalg._on_onednn(fx, fw)  # 420 multiply-adds: aten's (oneDNN's fixed cost would lose)
        monkeypatch.setattr(linalg, "ONEDNN_FROM_MACS", 4 * 3 * 7 * 5)
        assert linalg._on_onednn(fx, fw) and not linalg._on_onednn(fx.double(), fw.double())
        assert linalg._on_onednn(fx.new_empty(4, 3, 7), fw)  # the input gradient g @ weight: 420 too
        assert not linalg._on_onednn(fx[:3], fw)
        assert tuple(onednn.linear(fx, fw, None).shape) == (4, 3, 7)


def test_an_lstm_layer_is_onednn_s_layer_and_backward_in_a_compiled_step(monkeypatch):
    """The captured graph calls oneDNN's forward and backward (not the step loop), the forward's workspace
    sized as the real kernel's, and the compiled step (run by inductor with torch's grad mode off) trains
    the eager weights."""
    gen = torch.Generator().manual_seed(3)
    data = [(torch.randn(2, 5, 3, generator=gen), torch.randn(2, 5, 4, generator=gen)) for _ in range(4)]

    def make() -> tuple[nn.Module, Callable]:
        lstm = nn.LSTM(3, 4, batch_first=True)
        return lstm, lambda x, y: ((lstm(x)[0] - y) ** 2).mean()

    gm = _compiled_graph(monkeypatch, make, data)
    targets = _targets(gm)
    assert OPS.lstm_layer.default in targets and OPS.lstm_layer_backward.default in targets
    assert torch.ops.aten.mm.default not in targets and torch.ops.aten.addmm.default not in targets  # no step loop
    (ws,) = [n.meta["val"][3] for n in gm.graph.nodes if n.target is OPS.lstm_layer.default]
    g = torch.Generator().manual_seed(0)
    x, h = torch.randn(5, 2, 3, generator=g), torch.zeros(2, 4)
    w_ih, w_hh, b = torch.randn(16, 3, generator=g), torch.randn(16, 4, generator=g), torch.zeros(16)
    assert ws.numel() == onednn.lstm_layer(x, w_ih, w_hh, b, b, h, h, False, True, True)[3].numel() > 0
