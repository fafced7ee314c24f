"""`tg.trace(..., cuda_graph=True)` on a CUDA device: the captured step trains the eager weights,
captures again when it must, and names what it cannot capture. Skipped where there is no CUDA."""

from __future__ import annotations

import warnings

import pytest
import torch

import nn
import tapegrad as tg

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def seed_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 25), nn.ReLU(), nn.Linear(25, 25), nn.ReLU(), nn.Linear(25, 2), nn.Tanh())
    for p in model.parameters():
        p.data = p.data.cuda()
    return model


def data(steps: int, n: int = 10):
    g = torch.Generator().manual_seed(3)
    return [
        (tg.Tensor(torch.rand(n, 2, generator=g).cuda()), tg.Tensor((torch.rand(n, 2, generator=g) * 2 - 1).cuda()))
        for _ in range(steps)
    ]


def train(batches, traced: bool, momentum: float = 0.0, **options):
    model, loss_fn = seed_model(), nn.MSELoss()
    opt = nn.SGD(model.parameters(), lr=0.05, momentum=momentum)
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, cuda_graph=True, **options)
    losses = []
    for x, y in batches:
        if traced:
            losses.append(step(x, y).item())
        else:
            with tg.Tape() as tape:
                loss = loss_fn(model(x), y)
            tape.backward(loss)
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
    return model, losses, step


def graphs(step) -> list:
    """The step's CUDA graphs (`replay_cuda.Graphed`), one per captured input signature."""
    return [e.compiled for e in step._entries.values() if e.executor == "cuda_graph"]


def max_diff(a, b) -> float:
    return max(float((p.data - q.data).abs().max()) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_captured_step_trains_the_eager_weights(momentum):
    batches = data(100)
    eager, eager_losses, _ = train(batches, False, momentum)
    graphed, losses, step = train(batches, True, momentum)
    assert len(graphs(step)) == 1 and graphs(step)[0].graph is not None
    assert max_diff(eager, graphed) <= 1e-5  # float32 rounding at most
    assert losses == pytest.approx(eager_losses, rel=1e-5, abs=1e-6)


def test_a_new_batch_shape_captures_again_and_recapture_false_runs_eagerly():
    batches = data(4) + data(4, n=20) + data(4)
    eager, eager_losses, _ = train(batches, False)
    graphed, losses, step = train(batches, True)
    assert len(graphs(step)) == 2 and max_diff(eager, graphed) <= 1e-5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        once, losses, step = train(batches, True, recapture=False)
    assert len(graphs(step)) == 1 and max_diff(eager, once) <= 1e-5
    assert any("recapture=False" in str(w.message) for w in caught)


def test_rebinding_a_parameter_or_changing_the_learning_rate_captures_again():
    model, loss_fn = seed_model(), nn.MSELoss()
    opt = nn.SGD(model.parameters(), lr=0.05)
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, cuda_graph=True)
    ((x, y),) = data(1)
    for _ in range(4):
        step(x, y)
    (captured,) = graphs(step)
    first = captured.graph
    model[0].weight.data = torch.zeros(25, 2, device="cuda")
    with tg.no_grad():
        want = loss_fn(model(x), y).item()
    assert step(x, y).item() == pytest.approx(want, rel=1e-6)
    assert captured.graph is not first
    before = [p.data.clone() for p in model.parameters()]
    opt.param_groups[0]["lr"] = 0.0
    step(x, y)
    assert all(torch.equal(p.data, b) for p, b in zip(model.parameters(), before))


def test_a_host_sync_inside_the_step_is_named():
    def forward(x):
        return x * float(x.abs().sum().item() > -1)  # .item(): a host sync

    sync_scale = tg.primitive("test_sync_scale", forward, [lambda g, out, x: g])
    w = tg.Tensor(torch.ones(3, device="cuda"), requires_grad=True)
    opt = nn.SGD([w], lr=0.1)
    step = tg.trace(lambda: sync_scale(w).sum(), optimizer=opt, cuda_graph=True)
    step(), step()  # traced, then checked, both eagerly
    with pytest.raises(tg.TapeError, match="the forward of test_sync_scale is not capturable"):
        step()


def test_an_optimizer_with_cpu_state_is_named():
    model, loss_fn = seed_model(), nn.MSELoss()
    opt = nn.Adam(model.parameters(), lr=0.01)
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, cuda_graph=True)
    ((x, y),) = data(1)
    step(x, y), step(x, y)
    with pytest.raises(tg.TapeError, match="cannot capture Adam.step: its state 'step' of parameter 0 is a cpu tensor"):
        step(x, y)
