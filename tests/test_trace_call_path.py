"""`tg.trace`'s per-call path: the armed check agrees with the keyed lookup, the optimizer's
hyperparameter snapshot, and steps whose ops carry an output mask (layer_norm, batch_norm, convolution
backward) compiled (inductor's capture, its compile stood in for) to the eager weights."""

from __future__ import annotations

import pytest
import torch

import nn
import tapegrad as tg
from tapegrad.tracing import executors, signatures
from tapegrad.tracing.executors import Entry
from tapegrad.tracing.replay_optim import OptimizerView
from tapegrad.tracing.signatures import key_of


def armed_check(entry, args, opt=None):
    """The armed check `Entry.arm` makes for calls like ``args``, as a function of a call's arguments
    (False throughout where there is no tensor guard)."""
    made = signatures.armed(entry, args)
    return (lambda args: False) if made is None else eval(f"lambda args: {made[0]}", made[1])


@pytest.mark.parametrize("in_c", [False, True])
def test_the_armed_check_accepts_exactly_the_calls_with_the_traced_signature(in_c, monkeypatch):
    # without torch's C tensor guard no entry is armed: every call is looked up by its key, and is right
    if not in_c:
        monkeypatch.setattr(signatures, "tensor_check", lambda examples: None)
    x, raw = tg.Tensor(torch.rand(3, 2)), torch.rand(4)
    w = tg.tensor(torch.rand(2), requires_grad=True)
    args = (x, raw, w, 5, "mean")
    step = tg.trace(lambda x, raw, w, n, how: (x * w).sum() * n, executor="python")
    for _ in range(3):  # traced, checked, then run from the graph: armed
        step(*args)
    (entry,) = step._entries.values()
    ready = armed_check(entry, args)
    same = (tg.Tensor(torch.rand(3, 2)), torch.rand(4), tg.tensor([1.0, 2.0], requires_grad=True), 5, "mean")
    assert bool(ready(args)) is in_c and bool(ready(same)) is in_c
    assert (entry.call is not executors._never) is in_c
    other = [
        (tg.Tensor(torch.rand(3, 3)), raw, w, 5, "mean"),  # shape
        (tg.Tensor(torch.rand(3, 2, dtype=torch.float64)), raw, w, 5, "mean"),  # dtype
        (x, raw, tg.Tensor(torch.rand(2)), 5, "mean"),  # requires_grad
        (x, tg.Tensor(torch.rand(4)), w, 5, "mean"),  # a tg.Tensor where a raw tensor was
        (x, raw, w, 6, "mean"),  # a constant's value
        (x, raw, w, 5.0, "mean"),  # a constant's type
        (x, raw, w, 5),  # the number of inputs
        (tg.Tensor(torch.rand(2, 3).t()), raw, w, 5, "mean"),  # the strides
    ]
    for wrong in other:
        assert not ready(wrong)
        assert tuple(key_of(a) for a in wrong) != tuple(key_of(a) for a in args)
    for _ in range(2):
        same[2].grad = None
        step(*same)
        assert torch.equal(same[2].grad.data, (same[0].data * 5).sum(0))
    assert step.traces == 1


@pytest.mark.parametrize("executor", ["python", "inductor"])
def test_alternating_signatures_are_traced_once_each_and_give_the_eager_results(executor, quick_inductor):
    torch.manual_seed(0)
    model, loss_fn = nn.Linear(3, 2), nn.MSELoss()
    step = tg.trace(lambda x, y, scale: loss_fn(model(x) * scale, y), executor=executor)
    for i in range(8):
        n, scale = (4, 1.0) if i % 2 else (6, 2.0)
        x, y = tg.Tensor(torch.rand(n, 3)), tg.Tensor(torch.rand(n, 2))
        got = step(x, y, scale)
        grads = [p.grad.data.clone() for p in model.parameters()]
        for p in model.parameters():
            p.grad = None
        with tg.Tape() as tape:
            loss = loss_fn(model(x) * scale, y)
        tape.backward(loss)
        assert torch.equal(got.data, loss.data)
        assert all(torch.equal(g, p.grad.data) for g, p in zip(grads, model.parameters()))
        for p in model.parameters():
            p.grad = None
    assert step.traces == 2


def test_the_armed_check_passes_an_unchanged_call_and_fails_on_each_thing_the_compiled_step_baked_in(quick_inductor):
    torch.manual_seed(0)
    model, loss_fn = nn.Linear(3, 2), nn.MSELoss()
    opt = nn.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, executor="inductor")
    x, y = tg.Tensor(torch.rand(4, 3)), tg.Tensor(torch.rand(4, 2))
    for _ in range(6):
        step(x, y)
    (entry,) = step._entries.values()
    args = (tg.Tensor(torch.rand(4, 3)), tg.Tensor(torch.rand(4, 2)))
    ready = armed_check(entry, args, opt)
    assert entry.layout is not None and ready(args)  # folded, armed, a new batch passes
    assert not ready((tg.Tensor(torch.rand(5, 3)), args[1]))  # the signature
    w, b = model.weight, model.bias
    changes = [
        lambda: setattr(w, "data", w.data.clone()),  # a captured tensor rebound
        lambda: setattr(b, "requires_grad", False),
        lambda: setattr(w, "grad", tg.Tensor(torch.zeros(2, 3))),  # a gradient accumulated outside
        lambda: opt.state[w].__setitem__("momentum_buffer", torch.zeros(2, 3)),  # a state tensor replaced
        lambda: opt.state[w].__setitem__("extra", torch.zeros(1)),  # new state
        lambda: opt.param_groups[0].__setitem__("lr", 0.05),
    ]
    for change in changes:
        saved = (w.data, b.requires_grad, w.grad, dict(opt.state[w]), dict(opt.param_groups[0]))
        change()
        assert not ready(args)
        w.data, b.requires_grad, w.grad = saved[:3]
        opt.state[w].clear()
        opt.state[w].update(saved[3])
        opt.param_groups[0].update(saved[4])
        assert ready(args)
    handle = w.register_post_accumulate_grad_hook(lambda t: None)
    assert not ready(args)
    handle.remove()
    assert ready(args)
    elsewhere = tg.Tensor(torch.ones(2), requires_grad=True)  # another model's hooked leaf is not this step's
    with elsewhere.register_post_accumulate_grad_hook(lambda t: None):
        assert ready(args)


def test_a_call_that_fails_the_armed_check_makes_no_new_check_until_what_it_baked_in_changes(
    monkeypatch, quick_inductor
):
    torch.manual_seed(0)
    model, loss_fn = nn.Linear(3, 2), nn.MSELoss()
    opt = nn.SGD(model.parameters(), lr=0.1)
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, executor="inductor")
    x, y = tg.Tensor(torch.rand(4, 3)), tg.Tensor(torch.rand(4, 2))
    for _ in range(5):
        step(x, y)
    (entry,) = step._entries.values()
    made = []
    real = signatures.armed
    monkeypatch.setattr(executors, "armed", lambda *a: made.append(1) or real(*a))
    for _ in range(4):  # a gradient held on each call: the armed check fails, the step adds to it eagerly
        model.weight.grad = tg.Tensor(torch.zeros(2, 3))
        before = model.weight.data.clone()
        with tg.Tape() as tape:
            loss = loss_fn(model(x), y)
        (g,) = tape.gradient(loss, [model.weight])
        step(x, y)
        assert torch.allclose(model.weight.data, before - 0.1 * g.data, atol=1e-7)
    assert made == [] and entry.call((x, y)) is not None  # no check made anew; the old one passes again
    model.weight.data = model.weight.data.clone()  # rebound: the check is made anew, once
    step(x, y), step(x, y)
    assert made == [1]


def test_the_hyperparameter_snapshot_sees_a_changed_value_and_not_an_equal_one():
    model = nn.Linear(2, 2)
    opt = nn.SGD(model.parameters(), lr=0.1, momentum=0.9)
    view = OptimizerView(opt)
    snapshot = view.hyperparameters()
    opt.param_groups[0]["lr"] = 0.1 * 1.0  # a new float object, equal
    assert opt.param_groups == snapshot
    opt.param_groups[0]["momentum"] = 0.5
    assert opt.param_groups != snapshot


def norm_conv_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.LayerNorm(4 * 5 * 5),
        nn.Linear(4 * 5 * 5, 3),
    )


def test_layer_norm_batch_norm_and_conv_steps_compile_and_train_the_eager_weights(quick_inductor):
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(6, 2, 5, 5, generator=g), torch.randint(0, 3, (6,), generator=g)) for _ in range(8)]
    models = []
    for traced in (False, True):
        model, loss_fn = norm_conv_model(), nn.CrossEntropyLoss()
        opt = nn.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step = tg.trace(lambda x, y, m=model, f=loss_fn: f(m(x), y), optimizer=opt, executor="inductor")
        for x, y in batches:
            if traced:
                step(tg.Tensor(x), y)
                continue
            with tg.Tape() as tape:
                loss = loss_fn(model(tg.Tensor(x)), y)
            tape.backward(loss)
            opt.step()
            opt.zero_grad()
        models.append((model, step))
    (eager, _), (traced_model, step) = models
    (entry,) = step._entries.values()
    assert isinstance(entry, Entry) and entry.checked and not entry.refused
    assert entry.fold  # SGD's update is in the graph
    for (name, a), b in zip(eager.state_dict().items(), traced_model.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7), name  # the running statistics too: updated once per call


def test_an_input_with_other_strides_is_a_new_signature():
    # a compiled step may be specialized to its inputs' strides (inductor asserts them): y[:, -1] (stride 5)
    # and a contiguous y of the same shape are traced apart, and both give the eager gradients
    torch.manual_seed(0)
    model, loss_fn = nn.Linear(5, 1), nn.MSELoss()
    step = tg.trace(lambda x, y: loss_fn(model(x)[:, 0], y), executor="python")
    x, wide = tg.Tensor(torch.rand(4, 5)), torch.rand(4, 5)
    for y in (tg.Tensor(wide[:, -1]), tg.Tensor(wide[:, -1].contiguous())):
        for p in model.parameters():
            p.grad = None
        step(x, y)
        got = [p.grad.data.clone() for p in model.parameters()]
        for p in model.parameters():
            p.grad = None
        with tg.Tape() as tape:
            loss = loss_fn(model(x)[:, 0], y)
        tape.backward(loss)
        assert all(torch.equal(g, p.grad.data) for g, p in zip(got, model.parameters()))
    assert step.traces == 2


def test_an_armed_call_builds_no_key_and_makes_no_other_check(monkeypatch, quick_inductor):
    # the key, the captured tensors' kinds and the executor's own checks are made once per signature (and
    # again when a captured tensor is rebound): an armed call is the one generated check, then the graph
    from tapegrad.tracing import traced

    def never(*args):
        raise AssertionError("an armed call looked its signature up")

    models, losses = [], []
    for armed_only in (False, True):
        torch.manual_seed(0)
        model, loss_fn = nn.Linear(3, 2), nn.MSELoss()
        opt = nn.SGD(model.parameters(), lr=0.1)
        step = tg.trace(lambda x, y, m=model, f=loss_fn: f(m(x), y), optimizer=opt, executor="inductor")
        g = torch.Generator().manual_seed(1)
        batches = [
            (tg.Tensor(torch.rand(4, 3, generator=g)), tg.Tensor(torch.rand(4, 2, generator=g))) for _ in range(9)
        ]
        got = [step(x, y).item() for x, y in batches[:5]]  # trace, check, compile, check the compiled step
        if armed_only:
            monkeypatch.setattr(traced, "key_of", never)
            monkeypatch.setattr(Entry, "run", never)
        got += [step(x, y).item() for x, y in batches[5:]]
        models.append(model)
        losses.append(got)
    assert losses[0] == losses[1]
    assert all(torch.equal(p.data, q.data) for p, q in zip(models[0].parameters(), models[1].parameters()))
