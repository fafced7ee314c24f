"""How a step compiled by inductor runs what it captures: an LSTM layer on oneDNN's kernels
(tapegrad/ops/onednn.py: ``tapegrad::lstm_layer`` and its backward, which inductor calls as they are; the
compiled step trains the eager weights), Adam's bias corrections computed once a step, not per element.
One compile per test (inductor's on-disk cache makes a rerun cheap)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import nn
import tapegrad as tg
from tapegrad.ops import onednn
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
        assert entry.compiled is not None and not entry.refused  # compiled, and checked against eager
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


def test_adam_s_bias_corrections_are_computed_once_not_in_every_parameter_s_loop():
    """Captured, the corrections are 0-d tensors of the step counts; inductor must compute them once (a buffer)
    and not inline their pow (a libm call per 16 elements, which it cannot hoist) into every update loop."""
    from torch._inductor.utils import run_and_get_code
    from torch.fx.experimental.proxy_tensor import make_fx

    from nn.optim.optimizer import _bias_corrections

    def update(p: torch.Tensor, q: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        roots, sizes = _bias_corrections([s, t], [p, q], 0.9, 0.999, 1e-3, True)
        return p * sizes[0] / roots[0], q * sizes[1] / roots[1]

    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(64, generator=g), torch.randn(8, 8, generator=g), torch.tensor(3.0), torch.tensor(7.0)]
    gm = make_fx(update, tracing_mode="fake")(*inputs)
    got, code = run_and_get_code(lambda: replay_inductor._compiled(gm, inputs, True)(*inputs))
    # the text of each loop over a parameter's 64 elements, up to the next loop: no pow in it
    loops = [part for c in code for part in c.split("for(")[1:] if "(64L)" in part.split(";")[1]]
    assert loops and not any("pow(" in part for part in loops)
    roots, sizes = _bias_corrections(inputs[2:], inputs[:2], 0.9, 0.999, 1e-3, False)  # eager: Python floats
    for out, p, root, size in zip(got, inputs, roots, sizes):
        torch.testing.assert_close(out, p * size / root)


def test_the_compiled_step_is_inductor_s_runtime_wrapper_called_directly():
    """``compile_inductor`` hands back AOT autograd's runtime wrapper, not the function around it (Dynamo's frame
    hook off and on, the module's parameters prepended: 40-70 us a call of the lstm row's step); the wrapper still
    applies an in-place update of an input and bumps its version (tapegrad's in-place checks read it)."""

    def step(p: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor]:
        p.sub_(g * 0.5)
        return ((p * p).sum(),)

    g = torch.Generator().manual_seed(0)
    p, grad = torch.randn(6, generator=g), torch.randn(6, generator=g)
    want_p = p - grad * 0.5
    compiled = replay_inductor.compile_inductor(step, [p.clone(), grad], None)
    assert getattr(compiled, "__wrapped__", None) is None  # not torch._dynamo's disable() wrapper
    version = p._version
    (total,) = compiled(p, grad)
    torch.testing.assert_close(p, want_p)
    torch.testing.assert_close(total, (want_p * want_p).sum())
    assert p._version > version
