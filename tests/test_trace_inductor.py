"""`tg.trace(..., executor="inductor")`: the step and its optimizer compiled by inductor train the eager
weights (to float32 rounding: inductor fuses), dropout included; the updates inductor miscompiles are
rewritten; a compiled step that differs from the eager one is refused. ``"auto"``: the Python graph until
its replays have taken ``TAPEGRAD_COMPILE_AFTER`` seconds, then inductor, kept where it checks and is faster.
One compile for the module (the tier-up test compiles the same step: a cache hit); the others compile nothing."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

import nn
import tapegrad as tg
from tapegrad.tracing import executors, replay_inductor
from tapegrad.tracing.executors import Entry

STEPS = 12


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Dropout(0.2), nn.Linear(32, 3))


def batches(n: int = STEPS) -> list:
    g = torch.Generator().manual_seed(5)
    return [
        (tg.Tensor(torch.randn(16, 4, generator=g)), tg.Tensor(torch.randint(0, 3, (16,), generator=g)))
        for _ in range(n)
    ]


def sgd(params) -> nn.SGD:
    return nn.SGD(params, lr=0.1, momentum=0.9)


def train(executor: str | None, optimizer=sgd, n: int = STEPS) -> tuple[nn.Sequential, list[float], object]:
    net, loss_fn = model(), nn.CrossEntropyLoss()
    opt = optimizer(net.parameters())
    step = tg.trace(lambda x, y: loss_fn(net(x), y), optimizer=opt, executor=executor) if executor else None
    losses = []
    for i, (x, y) in enumerate(batches(n)):
        torch.manual_seed(100 + i)  # the same dropout masks in both runs
        if step is not None:
            losses.append(step(x, y).item())
            continue
        with tg.Tape() as tape:
            loss = loss_fn(net(x), y)
        tape.backward(loss)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return net, losses, step


@pytest.fixture(scope="module")
def compiled():
    from torch._dynamo.utils import counters

    before = dict(counters["inductor"])
    wrappers, real = [], replay_inductor._compiled
    with torch.random.fork_rng(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            replay_inductor, "_compiled", lambda gm, inputs, cpp: wrappers.append(cpp) or real(gm, inputs, cpp)
        )
        made = train(None), train("inductor")
    return (*made, {k: v - before.get(k, 0) for k, v in counters["inductor"].items()}, wrappers)


def test_the_compiled_step_with_dropout_and_momentum_trains_the_eager_weights(compiled):
    (eager, eager_losses, _), (net, losses, step), _, wrappers = compiled
    assert wrappers == [True]  # one compile, with the C++ wrapper (the CPU's)
    (entry,) = step._entries.values()
    assert isinstance(entry, Entry)
    assert entry.fold and entry.compiled is not None and not entry.refused  # SGD is in the graph
    assert losses == pytest.approx(eager_losses, rel=1e-6)
    for p, q in zip(eager.parameters(), net.parameters()):
        torch.testing.assert_close(q.data, p.data, rtol=1e-6, atol=1e-6)
    assert all(p.grad is None for p in net.parameters())


def test_adamw_is_folded_into_the_compiled_step_and_trains_the_eager_weights():
    # its bias corrections are tensor ops on the step counts (no value read into Python): in the graph
    def adamw(params):
        return nn.AdamW(params, lr=0.01, amsgrad=True)

    with torch.random.fork_rng():
        eager, eager_losses, _ = train(None, adamw)
        net, losses, step = train("inductor", adamw)
    (entry,) = step._entries.values()
    assert entry.fold and entry.checked and not entry.refused
    assert losses == pytest.approx(eager_losses, rel=1e-6)
    for p, q in zip(eager.parameters(), net.parameters()):
        torch.testing.assert_close(q.data, p.data, rtol=1e-6, atol=1e-6)


def test_the_compile_uses_inductor_s_fx_graph_cache(compiled):
    # without a tracing context with a shape environment, inductor bypasses the cache: every process
    # would compile the step anew; with it, the step is found (a hit) or stored (a miss)
    cache = compiled[2]
    assert cache.get("fxgraph_cache_bypass", 0) == 0
    assert cache.get("fxgraph_cache_hit", 0) + cache.get("fxgraph_cache_miss", 0) >= 1


def test_a_step_the_cpp_wrapper_cannot_build_is_compiled_with_the_python_wrapper(monkeypatch):
    made = []

    def compiled(gm, inputs, cpp):  # stands in for inductor: the C++ wrapper fails, the Python one is the graph
        made.append(cpp)
        if cpp:
            raise RuntimeError("no C++ shim for this op")
        return gm

    monkeypatch.setattr(replay_inductor, "_compiled", compiled)
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    step = replay_inductor.compile_inductor(lambda a, b: ((a @ b).relu().sum(),), [a, b], None)
    assert made == [True, False] and torch.equal(step(a, b)[0], (a @ b).relu().sum())
    monkeypatch.setattr(replay_inductor, "CPP_WRAPPER", False)
    made.clear()
    replay_inductor.compile_inductor(lambda a, b: ((a @ b).relu().sum(),), [a, b], None)
    assert made == [False]


def test_gradients_a_compiled_step_hands_out_are_not_overwritten_by_later_steps(quick_inductor):
    # width 256: the weight gradient is a product large enough for the eager pool of buffers (ops/_recycle),
    # which the capture must not bake in as a constant that every replay writes
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))
    step = tg.trace(lambda x, y: nn.MSELoss()(net(x), y), executor="inductor")
    g, held = torch.Generator().manual_seed(1), []
    for _ in range(8):
        step(tg.Tensor(torch.rand(10, 2, generator=g)), tg.Tensor(torch.rand(10, 2, generator=g)))
        held.append((net[2].weight.grad, net[2].weight.grad.data.clone()))
        net.zero_grad()
    (entry,) = step._entries.values()
    assert entry.checked and "_tensor_constant" not in entry.compiled.code
    assert all(torch.equal(grad.data, copy) for grad, copy in held)


def test_updates_inductor_miscompiles_are_rewritten_and_compute_the_same():
    def update(w, a, b, count, one):
        w.add_(torch.mm(a, b), alpha=-0.1)  # fused into addmm with alpha dropped, in torch 2.13
        count.add_(one)  # lost on a 0-d float64 tensor
        return (w + 0,)

    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(3, 4, generator=g), torch.randn(3, 2, generator=g), torch.randn(2, 4, generator=g)]
    inputs += [torch.zeros((), dtype=torch.float64), torch.ones((), dtype=torch.float64)]
    gm = make_fx(update, tracing_mode="fake")(*inputs)
    replay_inductor.rewrite_updates(gm)
    assert not any("alpha" in n.kwargs for n in gm.graph.nodes)
    in_place = [n for n in gm.graph.nodes if n.target is torch.ops.aten.add_.Tensor]
    assert [n.args[0].meta["val"].dim() for n in in_place] == [2]  # the weight's; the 0-d count's is a copy_
    want = [t.clone() for t in inputs]
    update(*want)
    got = [t.clone() for t in inputs]
    gm(*got)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_a_compiled_step_that_differs_from_eager_is_refused(monkeypatch):
    def miscompile(gm, inputs):  # what a silent miscompile looks like: the first output off
        def run(*args):
            out = list(gm(*args))
            out[0] = out[0] * 1.5
            return out

        return run

    monkeypatch.setattr(torch._inductor, "compile", miscompile)
    eager, eager_losses, _ = train(None)
    with pytest.warns(RuntimeWarning, match="differs from the eager step on its first replay"):
        net, losses, step = train("inductor")
    (entry,) = step._entries.values()
    assert entry.refused and entry.compiled is None
    assert losses == eager_losses  # never trained on: the Python graph ran every step
    assert all(torch.equal(p.data, q.data) for p, q in zip(eager.parameters(), net.parameters()))


def test_auto_runs_a_short_training_on_the_python_graph_and_compiles_nothing(monkeypatch):
    def never(*args):
        raise AssertionError("auto compiled a short run's step")

    monkeypatch.setattr(replay_inductor, "compile_inductor", never)
    with torch.random.fork_rng():
        eager, eager_losses, _ = train(None)
        net, losses, step = train("auto")
    (entry,) = step._entries.values()
    fast = entry
    assert isinstance(fast, Entry) and fast.after == executors.COMPILE_AFTER
    assert 0 < fast.spent < fast.after and fast.compiled is None and not fast.settled  # the Python graph, timed
    assert losses == eager_losses  # the eager step's kernels
    assert all(torch.equal(p.data, q.data) for p, q in zip(eager.parameters(), net.parameters()))


def test_compile_after_reads_its_setting_and_names_a_bad_one(monkeypatch):
    assert executors.compile_after() == executors.COMPILE_AFTER == 10.0
    monkeypatch.setenv("TAPEGRAD_COMPILE_AFTER", "inf")
    assert executors.compile_after() == float("inf")
    monkeypatch.setenv("TAPEGRAD_COMPILE_AFTER", "soon")
    step = tg.trace(lambda x: (x * x).sum())
    with pytest.raises(ValueError, match="TAPEGRAD_COMPILE_AFTER must be a number of seconds .*; got 'soon'"):
        for _ in range(3):  # traced, checked, then its executor is made
            step(tg.Tensor(torch.ones(2), requires_grad=True))


@pytest.fixture
def compile_after(monkeypatch):
    """TAPEGRAD_COMPILE_AFTER at 2 ms on a clock that advances 1 ms a reading (each replay of the Python graph
    counts 1 ms, whatever the machine's load: a compile after two); the compiles `Entry` makes are listed with
    the seconds of replays spent before each."""
    monkeypatch.setenv("TAPEGRAD_COMPILE_AFTER", "0.002")
    readings = itertools.count()
    monkeypatch.setattr(executors, "clock", lambda: next(readings) * 0.001)
    spent, real = [], Entry._compile

    def compile_(self, fold, args):
        spent.append(self.spent)
        return real(self, fold, args)

    monkeypatch.setattr(Entry, "_compile", compile_)
    return spent


def test_auto_compiles_with_inductor_once_the_replays_have_taken_compile_after_seconds(monkeypatch, compile_after):
    # the same step as the module's inductor compile: found in inductor's caches. The timing of the
    # compiled step against the Python graph is stood in for (here: the compiled step is faster)
    times = iter([1.0, 2.0])  # the compiled step's replays, then the Python graph's
    monkeypatch.setattr(executors, "_timed", lambda fn, inputs, plan: next(times))
    with torch.random.fork_rng():
        eager, eager_losses, _ = train(None, n=40)
        net, losses, step = train("auto", n=40)
    (entry,) = step._entries.values()
    assert len(compile_after) == 1 and compile_after[0] >= 0.002  # one compile, after 2 ms of replays
    assert entry.settled and entry.fold and not entry.refused  # kept: SGD folded in
    assert losses == pytest.approx(eager_losses, rel=1e-6)  # dropout's masks included
    for p, q in zip(eager.parameters(), net.parameters()):
        torch.testing.assert_close(q.data, p.data, rtol=1e-6, atol=1e-6)


def test_auto_keeps_the_python_graph_where_it_is_faster_or_inductor_refuses_and_says_nothing(
    monkeypatch, compile_after, quick_inductor
):
    def miscompile(gm, inputs, cpp):
        return lambda *args: [o * 1.5 for o in gm(*args)]

    timed = []
    monkeypatch.setattr(executors, "_timed", lambda fn, inputs, plan: timed.append(fn) or 1.0)  # a tie: Python
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("error")
        eager, eager_losses, _ = train(None, n=30)
        runs = [train("auto", n=30)]
        assert len(timed) == 2  # checked, then timed against the Python graph
        monkeypatch.setattr(replay_inductor, "_compiled", miscompile)
        runs.append(train("auto", n=30))
    assert len(compile_after) == 3  # folded, then (a miscompile, refused) unfolded
    for net, losses, step in runs:
        (entry,) = step._entries.values()
        assert entry.refused and entry.compiled is None and entry.call is not executors._never  # armed
        assert losses == eager_losses  # never trained on: the Python graph ran every step
        assert all(torch.equal(p.data, q.data) for p, q in zip(eager.parameters(), net.parameters()))


def test_a_changed_learning_rate_waits_again_before_it_compiles_again(monkeypatch, compile_after, quick_inductor):
    compiled_faster = lambda fn, inputs, plan: 0.0 if isinstance(fn, torch.fx.GraphModule) else 1.0  # noqa: E731
    monkeypatch.setattr(executors, "_timed", compiled_faster)
    net, loss_fn = model(), nn.CrossEntropyLoss()
    opt = sgd(net.parameters())
    step = tg.trace(lambda x, y: loss_fn(net(x), y), optimizer=opt)
    data = batches(60)
    for x, y in data[:30]:
        step(x, y)
    (entry,) = step._entries.values()
    assert entry.checked and len(compile_after) == 1
    opt.param_groups[0]["lr"] = 0.05  # baked into the folded update: the Python graph until it is repaid again
    step(*data[30])
    assert not entry.settled and entry.spent == pytest.approx(0.001) and len(compile_after) == 1
    for x, y in data[31:]:
        step(x, y)
    assert entry.checked and len(compile_after) == 2 and compile_after[1] >= 0.002
