"""`tg.trace` executors and ``optimizer=``: the Python graph and the folded optimizer step train the eager
weights exactly, the compiled step (inductor, its compile stood in for) to float32 rounding; the CUDA-graph
option's CPU-visible logic (device fallback, recapture policy, capture errors that name the op)."""

from __future__ import annotations

import warnings

import pytest
import torch

import nn
import tapegrad as tg
from tapegrad.tracing import replay_cuda
from tapegrad.tracing.executors import Entry
from tapegrad.tracing.replay_optim import OptimizerView
from tapegrad.tracing.tracegen import Declined

OPTIMIZERS = [
    (nn.SGD, {"lr": 0.05}),
    (nn.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    (nn.Adam, {"lr": 0.01}),
    (nn.AdamW, {"lr": 0.01, "amsgrad": True}),
]


def seed_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 25), nn.ReLU(), nn.Linear(25, 25), nn.ReLU(), nn.Linear(25, 2), nn.Tanh())


def data(steps: int = 100, n: int = 10, raw: bool = False):
    """``steps`` batches of ``n``: tg.Tensor slices, or raw torch tensors (as nn.fit yields from torch data)."""
    g = torch.Generator().manual_seed(3)
    xs = torch.rand(steps * n, 2, generator=g)
    ys = torch.rand(steps * n, 2, generator=g) * 2 - 1
    if not raw:
        xs, ys = tg.Tensor(xs), tg.Tensor(ys)
    return [(xs[i : i + n], ys[i : i + n]) for i in range(0, steps * n, n)]


def eager_step(model, loss_fn, opt, x, y):
    """One training step the eager way (a tape, backward, step, zero_grad); returns the loss."""
    with tg.Tape() as tape:
        loss = loss_fn(model(x), y)
    tape.backward(loss)
    opt.step()
    opt.zero_grad()
    return loss


def eager_training(opt_cls, kwargs, batches, schedule=None):
    model, loss_fn = seed_model(), nn.MSELoss()
    opt = opt_cls(model.parameters(), **kwargs)
    losses = []
    for i, (x, y) in enumerate(batches):
        if schedule:
            schedule(opt, i)
        losses.append(eager_step(model, loss_fn, opt, x, y).item())
    return model, losses


def traced_training(opt_cls, kwargs, batches, schedule=None, **options):
    model, loss_fn = seed_model(), nn.MSELoss()
    opt = opt_cls(model.parameters(), **kwargs)
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, **options)
    losses = []
    for i, (x, y) in enumerate(batches):
        if schedule:
            schedule(opt, i)
        losses.append(step(x, y).item())
    return model, losses, step


def graphed(step) -> list:
    """The step's entries replayed as CUDA graphs."""
    return [e for e in step._entries.values() if e.executor == "cuda_graph"]


def same_weights(a: nn.Module, b: nn.Module, exact: bool = True) -> bool:
    """Equal weights; or (inductor, whose graph scales ``alpha=`` by a multiply) equal to float32 rounding."""
    same = torch.equal if exact else lambda x, y: torch.allclose(x, y, rtol=1e-6, atol=1e-7)
    return all(same(p.data, q.data) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("inputs", ["tg.Tensor", "raw torch"])
@pytest.mark.parametrize("executor", ["python", "inductor"])
@pytest.mark.parametrize("opt_cls,kwargs", OPTIMIZERS)
def test_a_traced_step_with_its_optimizer_trains_the_eager_weights(executor, opt_cls, kwargs, inputs, quick_inductor):
    # raw torch inputs: the folded graph is traced on a later call than the first graph, and must
    # take that call's tensors as its inputs (it once froze the first call's batch as a constant)
    batches = data(raw=inputs == "raw torch")
    eager, eager_losses = eager_training(opt_cls, kwargs, batches)
    traced, losses, step = traced_training(opt_cls, kwargs, batches, executor=executor)
    exact = executor == "python"  # the eager step's kernels
    assert same_weights(eager, traced, exact), "100 steps"
    assert losses == eager_losses if exact else losses == pytest.approx(eager_losses, rel=1e-6)
    assert all(p.grad is None for p in traced.parameters())  # the step zeroes the gradients it used
    assert step.traces == 1


class _ItemSGD(nn.SGD):
    """SGD whose step reads a gradient into Python (``.item()``): its step cannot be a graph."""

    def step(self) -> None:
        for group in self.param_groups:
            group["lr"] = min(group["lr"], 1e3 / max(float(p.grad.data.abs().max().item()) for p in group["params"]))
        super().step()


def test_the_compiled_step_folds_sgd_and_adam_but_not_an_optimizer_that_reads_tensors_into_python(quick_inductor):
    # Adam's bias corrections are tensor ops on its step counts: the graph keeps them live
    batches = data(5)
    cases = [
        (nn.SGD, {"lr": 0.1, "momentum": 0.5}, True),
        (nn.Adam, {"lr": 0.01}, True),
        (nn.AdamW, {"lr": 0.01}, True),
        (_ItemSGD, {"lr": 0.1}, False),
    ]
    for opt_cls, kwargs, folded in cases:
        eager, _ = eager_training(opt_cls, kwargs, batches)
        traced, _, step = traced_training(opt_cls, kwargs, batches, executor="inductor")
        (fast,) = step._entries.values()
        assert isinstance(fast, Entry) and fast.compiled is not None
        assert fast.fold is folded, opt_cls.__name__
        assert same_weights(eager, traced, exact=False), opt_cls.__name__


class _DecayingSGD(nn.SGD):
    """SGD whose learning rate is a state tensor, decayed in place each step and handed to
    ``_foreach_addcdiv_`` as a tensor of scalars, which torch reads into Python floats in C++:
    a traced graph would freeze the first step's rates without a warning."""

    def step(self) -> None:
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        rates = self.state.setdefault(params[0], {}).setdefault("rates", torch.full((len(params),), -0.1))
        grads = [p.grad.data for p in params]
        torch._foreach_addcdiv_([p.data for p in params], grads, [torch.ones_like(g) for g in grads], rates)
        rates.mul_(0.9)


def test_a_folded_graph_that_froze_a_value_is_caught_on_its_first_replay(quick_inductor):
    batches = data(12)
    eager, _ = eager_training(_DecayingSGD, {"lr": 0.1}, batches)
    traced, _, step = traced_training(_DecayingSGD, {"lr": 0.1}, batches, executor="inductor")
    (fast,) = step._entries.values()
    assert not fast.fold and fast.compiled is not None  # folded, replayed once on copies, dropped; unfolded
    assert same_weights(eager, traced)


def test_a_learning_rate_change_reaches_the_folded_step(quick_inductor):
    def schedule(opt, i):
        for g in opt.param_groups:
            g["lr"] = 0.1 if i < 20 else 0.01

    batches = data(40)
    eager, _ = eager_training(nn.SGD, {"lr": 0.1}, batches, schedule)
    traced, _, _ = traced_training(nn.SGD, {"lr": 0.1}, batches, schedule, executor="inductor")
    assert same_weights(eager, traced, exact=False)


def test_gradients_accumulated_before_the_call_are_stepped_with_the_new_ones():
    batches = data(6)
    models = []
    for traced in (False, True):
        model, loss_fn = seed_model(), nn.MSELoss()
        opt = nn.SGD(model.parameters(), lr=0.1)
        step = tg.trace(lambda x, y, model=model, loss_fn=loss_fn: loss_fn(model(x), y), optimizer=opt)
        for x, y in batches:
            for p in model.parameters():  # e.g. an extra loss term's gradient, accumulated by hand
                p.grad = tg.Tensor(torch.full_like(p.data, 0.01))
            if traced:
                step(x, y)
            else:
                eager_step(model, loss_fn, opt, x, y)
        models.append(model)
    assert same_weights(*models)


def test_rebinding_a_parameter_is_seen_by_the_compiled_step(quick_inductor):
    model, loss_fn = seed_model(), nn.MSELoss()
    step = tg.trace(lambda x, y: loss_fn(model(x), y), executor="inductor")
    ((x, y),) = data(1)
    for _ in range(4):
        step(x, y)
    model[0].weight.data = torch.zeros(25, 2)
    with tg.no_grad():
        want = loss_fn(model(x), y)
    assert step(x, y).item() == want.item()
    assert step.traces == 1


def test_a_vjp_that_branches_on_a_value_is_caught_and_replayed_in_python(quick_inductor):
    # the VJP's branch depends on g's sign: a graph captured through it would freeze one branch (make_fx's
    # fake tensors refuse to decide it, so the compile declines and says so)
    def vjp(g, out, x):
        return g * 2 if bool((g > 0).all()) else g * 3

    double = tg.primitive("test_branchy_double", lambda x: x * 2, [vjp])
    w = tg.Tensor(torch.ones(3), requires_grad=True)
    step = tg.trace(lambda s: (double(w) * s).sum(), executor="inductor")
    with pytest.warns(RuntimeWarning, match="the step runs from the Python graph: inductor cannot compile it"):
        for sign in (1.0, 1.0, 1.0, -1.0, 1.0, -1.0):
            w.grad = None
            step(tg.Tensor(torch.full((3,), sign)))
            assert torch.equal(w.grad.data, torch.full((3,), 2.0 * sign if sign > 0 else 3.0 * sign))
    assert next(iter(step._entries.values())).refused


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="executor must be one of auto, python, inductor; got 'jit'"):
        tg.trace(lambda x: x, executor="jit")
    with pytest.warns(DeprecationWarning, match="executor='torchscript' was removed .* runs as executor='auto'") as w:
        assert tg.trace(lambda x: x, executor="torchscript").executor == "auto"
    assert w[0].filename == __file__  # the caller's line
    with pytest.raises(TypeError, match="optimizer= must be an optimizer.*list has no param_groups"):
        tg.trace(lambda x: x, optimizer=[])


def test_cuda_graph_on_cpu_tensors_runs_without_a_graph_and_says_so():
    batches = data(6)
    eager, _ = eager_training(nn.SGD, {"lr": 0.05}, batches)
    with pytest.warns(RuntimeWarning, match="cuda_graph=True, but the step's tensors are not all on a CUDA device"):
        traced, _, step = traced_training(nn.SGD, {"lr": 0.05}, batches, cuda_graph=True)
    assert same_weights(eager, traced) and not graphed(step)


class _FakeGraph:
    """Stands in for a captured CUDA graph on a machine without CUDA: a replay runs the step again on the
    tensors it was captured on and writes its outputs into the captured outputs, as a graph's replay does."""

    def __init__(self, fn, inputs, outs) -> None:
        self.fn, self.inputs, self.outs = fn, inputs, outs

    def replay(self) -> None:
        for out, new in zip(self.outs, self.fn(*self.inputs)):
            out.copy_(new)


@pytest.fixture
def fake_cuda(monkeypatch):
    """replay_cuda on the CPU: every step is 'on CUDA', the warm-up runs the step on scratch copies, the graph
    is `_FakeGraph` (whose captures are listed by their first input's shape), and an optimizer's CPU state is
    not refused."""
    captures = []

    def record(fn, inputs):
        captures.append(tuple(inputs[0].shape))
        outs = [torch.empty_like(o) for o in fn(*[t.clone() for t in inputs])]  # (a capture runs nothing)
        return _FakeGraph(fn, inputs, outs), outs

    monkeypatch.setattr(replay_cuda, "on_cuda", lambda args, captured: True)
    monkeypatch.setattr(replay_cuda, "warm_up", lambda plan, fn, inputs: fn(*[t.clone() for t in inputs]))
    monkeypatch.setattr(replay_cuda, "record", record)
    monkeypatch.setattr(replay_cuda, "check_state_on_cuda", lambda view: None)
    return captures


@pytest.mark.parametrize("recapture", [True, False])
def test_a_new_input_signature_captures_again_or_runs_eagerly_with_a_warning(fake_cuda, recapture):
    model, loss_fn = seed_model(), nn.MSELoss()
    step = tg.trace(lambda x, y: loss_fn(model(x), y), cuda_graph=True, recapture=recapture)
    small, large = data(1, 10)[0], data(1, 20)[0]
    for _ in range(4):
        step(*small)
    assert set(fake_cuda) == {(10, 2)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(4):
            loss = step(*large)
    with tg.Tape():
        want = loss_fn(model(large[0]), large[1])
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    if recapture:
        assert set(fake_cuda) == {(10, 2), (20, 2)} and not caught and len(graphed(step)) == 2
    else:
        assert set(fake_cuda) == {(10, 2)} and len(graphed(step)) == 1
        assert any("recapture=False: this call runs eagerly" in str(w.message) for w in caught)


@pytest.mark.parametrize("opt_cls,kwargs", OPTIMIZERS[:3])
def test_a_graphed_step_trains_the_eager_weights_and_captures_again_on_a_rebound_parameter(fake_cuda, opt_cls, kwargs):
    batches = data(12)
    eager, eager_losses = eager_training(opt_cls, kwargs, batches)
    traced, losses, step = traced_training(opt_cls, kwargs, batches, cuda_graph=True)
    (entry,) = step._entries.values()
    graphed = entry.compiled
    assert isinstance(graphed, replay_cuda.Graphed) and entry.fold and entry.checked
    assert same_weights(eager, traced) and losses == eager_losses  # the step's kernels, each step's batch copied in
    first = graphed.graph
    x, y = batches[0]
    traced[0].weight.data = torch.zeros(25, 2)  # the graph read the old tensor: it is captured again on this one
    with tg.no_grad():
        want = nn.MSELoss()(traced(x), y).item()
    assert step(x, y).item() == want and graphed.graph is not first
    assert any(t is traced[0].weight.data for t in graphed.bound)


def test_a_graphed_step_with_dropout_draws_the_eager_steps_masks(fake_cuda):
    # the warm-up and the capture draw too: the generators are put back, so the replays draw as eager does
    def run(cuda_graph):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 2))
        opt, loss_fn = nn.SGD(model.parameters(), lr=0.1), nn.MSELoss()
        step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, cuda_graph=cuda_graph)
        for i, (x, y) in enumerate(data(8)):
            torch.manual_seed(100 + i)
            step(x, y)
        return model, step

    (eager, _), (graphed, step) = run(False), run(True)
    (entry,) = step._entries.values()
    assert isinstance(entry.compiled, replay_cuda.Graphed) and entry.checked and entry.fold
    assert all(torch.allclose(p.data, q.data, atol=1e-6) for p, q in zip(eager.parameters(), graphed.parameters()))


def test_a_graphed_step_without_optimizer_hands_out_gradients_that_the_next_replay_keeps(fake_cuda):
    model, loss_fn = seed_model(), nn.MSELoss()
    step = tg.trace(lambda x, y: loss_fn(model(x), y), cuda_graph=True)
    grads = []
    for x, y in data(6):
        step(x, y)
        grads.append([(p.grad.data, p.grad.data.clone()) for p in model.parameters()])
        model.zero_grad()
    (entry,) = step._entries.values()
    assert isinstance(entry.compiled, replay_cuda.Graphed) and not entry.fold
    assert all(torch.equal(g, kept) for step_grads in grads for g, kept in step_grads)  # none overwritten later
    assert not torch.equal(grads[-1][0][1], grads[-2][0][1])


def test_a_capture_error_names_the_op_that_synchronized():
    armed = []

    def forward(x):
        if armed:  # what a host sync inside a CUDA graph capture raises
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")
        return x * 3

    triple = tg.primitive("test_host_sync_triple", forward, [lambda g, out, x: g * 3])
    w = tg.Tensor(torch.ones(3), requires_grad=True)
    step = tg.trace(lambda: triple(w).sum(), check=False)
    step()
    (plan,) = [e.plan for e in step._entries.values()]
    outs, grads = replay_cuda.run_naming(plan, plan.inputs(()))
    assert torch.equal(grads[0], torch.full((3,), 3.0))
    armed.append(True)
    with pytest.raises(tg.TapeError) as info:
        replay_cuda.run_naming(plan, plan.inputs(()))
    assert "cannot capture this step: the forward of test_host_sync_triple is not capturable" in str(info.value)
    assert "operation not permitted when stream is capturing" in str(info.value)


def test_an_optimizer_keeping_state_on_the_cpu_is_named_before_a_capture():
    model = seed_model()
    opt = nn.Adam(model.parameters(), lr=0.01)
    for p in model.parameters():
        p.grad = tg.Tensor(torch.ones_like(p.data))
    opt.step()
    with pytest.raises(
        tg.TapeError, match=r"cannot capture Adam.step: its state 'step' of parameter 0 is a cpu tensor"
    ):
        replay_cuda.check_state_on_cuda(OptimizerView(opt))


def test_the_optimizer_view_tracks_hyperparameters_and_state_layout():
    model = seed_model()
    opt = nn.SGD(model.parameters(), lr=0.1, momentum=0.9)
    view = OptimizerView(opt)
    hyper = view.hyperparameters()
    assert view.grads_clear() and view.state_tensors() == []
    for p in model.parameters():
        p.grad = tg.Tensor(torch.ones_like(p.data))
    assert not view.grads_clear()
    with pytest.raises(Declined, match="the optimizer's step creates its state"), view.making_no_state():
        opt.step()
    assert view.state_tensors() == []  # the momentum buffers the step made are deleted
    view.step()
    assert view.grads_clear()
    assert len(view.state_tensors()) == 6 and view.hyperparameters() == hyper
    opt.param_groups[0]["lr"] = 0.01
    assert view.hyperparameters() != hyper


def test_a_hook_on_another_tensor_leaves_the_compiled_replay_on(quick_inductor):
    # hooks force the Python replay only for the steps whose own leaves have them
    elsewhere = tg.tensor([1.0], requires_grad=True)
    handle = elsewhere.register_post_accumulate_grad_hook(lambda t: None)
    try:
        _, _, step = traced_training(nn.SGD, {"lr": 0.1}, data(4), executor="inductor")
        assert step._entries and all(e.executor for e in step._entries.values())
        model, loss_fn = seed_model(), nn.MSELoss()
        fired = []
        for p in model.parameters():
            p.register_post_accumulate_grad_hook(lambda t: fired.append(t))
        hooked = tg.trace(lambda x, y: loss_fn(model(x), y), executor="inductor")
        for x, y in data(3):
            hooked(x, y)
        assert not any(e.executor for e in hooked._entries.values()) and len(fired) == 3 * len(list(model.parameters()))
    finally:
        handle.remove()
