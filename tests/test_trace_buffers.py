"""`tg.trace` and buffers an op updates in place (BatchNorm's running statistics): a traced step
updates them once per call, as the eager step does, though its first calls also run the step to
check it; and a traced recurrent step is traced once over many calls."""

from __future__ import annotations

import pytest
import torch

import nn
import tapegrad as tg


def bn_model(momentum: float | None) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6, momentum=momentum), nn.ReLU(), nn.Linear(6, 3))


def fitted(trace: bool, momentum: float | None) -> dict[str, torch.Tensor]:
    model = bn_model(momentum)
    torch.manual_seed(1)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    opt = nn.SGD(model.parameters(), lr=0.1, momentum=0.9)
    nn.fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=8, progress=False, seed=3, trace=trace)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("momentum", [0.1, None])
def test_fit_trace_keeps_batchnorm_running_statistics(momentum: float | None) -> None:
    eager, traced = fitted(False, momentum), fitted(True, momentum)
    assert int(traced["1.num_batches_tracked"]) == int(eager["1.num_batches_tracked"]) == 16
    for name, value in eager.items():
        assert torch.allclose(traced[name].double(), value.double(), rtol=0, atol=1e-6), name
    assert not torch.equal(eager["1.running_mean"], torch.zeros(6))  # the statistics did move


@pytest.mark.parametrize("executor", ["python", "inductor"])
def test_traced_step_updates_buffers_once_per_call(executor: str, quick_inductor) -> None:
    models = [bn_model(0.1), bn_model(0.1)]
    loss_fn = nn.MSELoss()

    def step(x: tg.Tensor, y: tg.Tensor) -> tg.Tensor:
        return loss_fn(models[1](x), y)

    traced = tg.trace(step, executor=executor)
    torch.manual_seed(2)
    for _ in range(6):
        x, y = torch.randn(5, 4), torch.randn(5, 3)
        with tg.Tape() as tape:
            loss = loss_fn(models[0](x), y)
        tape.backward(loss)
        traced(tg.tensor(x), tg.tensor(y))
    bn_eager, bn_traced = models[0][1], models[1][1]
    assert int(bn_traced.num_batches_tracked) == 6
    assert torch.allclose(bn_traced.running_mean, bn_eager.running_mean, atol=1e-6)
    assert torch.allclose(bn_traced.running_var, bn_eager.running_var, atol=1e-6)
    assert traced.traces == 1
    # the buffers are inputs of the graph, after the captured parameters, named with the params holding them
    inputs = [n.target for n in traced.graph_module().graph.nodes if n.op == "placeholder"]
    assert inputs[-3:] == ["const_0_running_mean", "const_1_running_var", "const_2_num_batches_tracked"]


@pytest.mark.parametrize("fresh_hidden", [False, True])
def test_traced_gru_step_is_traced_and_compiled_once(fresh_hidden: bool, quick_inductor) -> None:
    torch.manual_seed(0)
    gru, head = nn.GRU(3, 5, batch_first=True), nn.Linear(5, 2)
    opt = nn.AdamW([*gru.parameters(), *head.parameters()], lr=1e-3)
    loss_fn = nn.MSELoss()

    def step(x: tg.Tensor, y: tg.Tensor, *h0: tg.Tensor) -> tg.Tensor:
        out, _ = gru(x, *h0)
        return loss_fn(head(out), y)

    traced = tg.trace(step, optimizer=opt, executor="inductor")
    compiled = set()
    for _ in range(8):
        x, y = tg.tensor(torch.randn(4, 6, 3)), tg.tensor(torch.randn(4, 6, 2))
        h0 = (tg.tensor(torch.zeros(1, 4, 5)),) if fresh_hidden else ()
        traced(x, y, *h0)
        fast = next(iter(traced._entries.values()))
        if fast is not None and fast.compiled is not None:
            compiled.add(id(fast.compiled))
    assert traced.traces == 1
    assert len(compiled) == 1 and fast.checked  # one compiled function, replayed from its fourth call


def test_traced_step_with_an_expanded_constant_still_checks() -> None:
    # the causal mask of the benchmark's transformer is an expanded view: restoring it in place would fail
    from tapegrad.cli.bench.models import batches, build, traced_contender

    _, model, _ = build("transformer")
    step = traced_contender(model)
    x, y = batches(16, True, 1)[0]
    losses = [step(x, y) for _ in range(5)]
    assert all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.parametrize("executor", ["python", "inductor"])
def test_raw_tensors_held_by_one_param_are_inputs_of_their_own(executor: str, quick_inductor) -> None:
    # (an LSTM's weights are a tuple of raw tensors: the graph's inputs must be named apart)
    def forward(x, *, pair):
        return x * pair[0] + pair[1]

    def vjp(g, out, x, *, pair):
        return g * pair[0]

    affine = tg.primitive("test_pair_affine", forward, [vjp])
    pair = (torch.rand(3), torch.rand(3))
    w = tg.Tensor(torch.rand(3), requires_grad=True)
    step = tg.trace(lambda x: affine(x * w, pair=pair).sum(), executor=executor)
    for _ in range(5):
        w.grad = None
        x = tg.Tensor(torch.rand(3))
        step(x)
        assert torch.allclose(w.grad.data, x.data * pair[0])
    inputs = [n.target for n in step.graph_module().graph.nodes if n.op == "placeholder"]
    assert inputs[-2:] == ["const_0_pair", "const_1_pair"] and step.traces == 1
