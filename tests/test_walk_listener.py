"""The walk's pieces: a `Listener` hears every rule call, cast, sum and ready leaf in the walk's order;
one reachability function (`walk.leading_to`) and one seed builder (`walk.seed`) serve every caller."""

import sys

import pytest
import torch

import nn
import tapegrad as tg
import viz
from tapegrad.engine.walk import Listener, first_consumers, leading_to, seed, walk

F64 = torch.float64

# a per-input rule that returns float32 for a float64 input: the walk casts it (a `cast` event)
_square_f32 = tg.primitive(
    "test_walk_listener_square_f32", lambda x: x * x, [lambda g, out, x: (2 * g * x).to(torch.float32)]
)


class Events(Listener):
    """Keeps every event, with the objects it names, in order."""

    def __init__(self):
        self.events = []

    def vjp(self, r, i, rule, g, result):
        self.events.append(("vjp", r.primitive.name, i, g, result))

    def cast(self, before, after):
        self.events.append(("cast", before, after))

    def add(self, prev, g, total):
        self.events.append(("add", prev, g, total))

    def ready(self, leaf, g):
        self.events.append(("ready", leaf, g))


def test_a_listener_hears_rule_calls_casts_sums_and_ready_leaves_in_the_walks_order():
    x0 = torch.tensor([0.5, -1.5, 2.0], dtype=F64)
    x = tg.tensor(x0, requires_grad=True)
    with tg.Tape(persistent=True) as tape:
        y = _square_f32(x)  # record 0
        z = y * x  # record 1: x's second use
        loss = z.sum()  # record 2
    records = tape.records
    listener = Events()
    ones = seed(loss, None, raw=True)
    listener.ready_at = first_consumers(records, lambda t: t.requires_grad)
    assert listener.ready_at == {0: [x]}  # x's gradient is final once the walk is past record 0
    rest = walk(records, loss, ones, raw=True, listener=listener)
    assert rest == {}  # the ready leaf went to the listener, not into the result
    kinds = [(e[0], e[1], e[2]) if e[0] == "vjp" else e[0] for e in listener.events]
    assert kinds[:3] == [("vjp", "sum", 0), ("vjp", "mul", 0), ("vjp", "mul", 1)]
    assert kinds[3:] == [("vjp", _square_f32.name, 0), "cast", "add", "ready"]
    *_, (_, _, _, _, from_square), (_, before, after), (_, prev, g, total), (_, leaf, final) = listener.events
    # each event names the objects the walk holds, so a listener can follow a gradient by identity
    assert before is from_square and before.dtype == torch.float32 and after.dtype == F64
    assert g is after and prev is listener.events[2][4] and final is total and leaf is x
    xt = x0.clone().requires_grad_()
    (expected,) = torch.autograd.grad((xt * xt * xt).sum(), xt)
    torch.testing.assert_close(final, expected)


def test_the_default_listener_methods_ignore_events_and_backward_hooks_fire_through_ready():
    w = tg.tensor(torch.randn(3, dtype=F64), requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.data.clone()))
    with tg.Tape() as tape:
        loss = (w * w).sum() + w.sum()
    tape.backward(loss)
    assert len(seen) == 1 and torch.allclose(seen[0], 2 * w.data + 1)

    class OnlyReady(Listener):  # vjp, cast and add come from the defaults
        def __init__(self):
            self.ready_leaves = []

        def ready(self, leaf, g):
            self.ready_leaves.append(leaf)

    with tg.Tape(persistent=True) as tape:
        loss = (w * w).sum()
    listener = OnlyReady()
    listener.ready_at = first_consumers(tape.records, lambda t: t.requires_grad)
    walk(tape.records, loss, seed(loss, None, raw=True), raw=True, listener=listener)
    assert listener.ready_leaves == [w]


def _branching_tape():
    """y depends on a (through a dropout whose mask is a param drawn by its own record) and b; dead on c."""
    a, b, c = (tg.tensor(torch.randn(4, dtype=F64), requires_grad=True) for _ in range(3))
    with tg.Tape(persistent=True) as tape:
        h = nn.functional.dropout(a.tanh(), p=0.5, generator=torch.Generator().manual_seed(0))
        dead = (c * 3).exp()
        y = (h * b).sum()
        after = y * 2  # recorded after the target: not leading to it
    return tape, (a, b, c), y, dead, after


def _modules_using(fn):
    """The loaded tapegrad/nn/viz modules, other than fn's own, that hold ``fn`` itself under its name."""
    return sorted(
        name.split(".")[-1]
        for name, m in list(sys.modules.items())
        if name.split(".")[0] in ("tapegrad", "nn", "viz") and name != fn.__module__
        and getattr(m, fn.__name__, None) is fn
    )  # fmt: skip


def test_leading_to_keeps_the_records_a_target_depends_on_through_inputs_and_params_in_tape_order():
    tape, (a, b, c), y, dead, after = _branching_tape()
    records = tape.records
    kept = leading_to(records, [y])
    names = [r.primitive.name for r in kept]
    assert names == ["tanh", "dropout_mask", "dropout", "mul", "sum"]
    assert all(r.output is not dead and r.output is not after for r in kept)
    assert [r for r in records if r in kept] == kept  # tape order
    assert leading_to(records, [a]) == []  # a leaf: no record made it


def test_every_reachability_test_is_the_one_function_and_they_agree():
    # one function, not three copies: the tape's unused-source check, tg.trace's graph and viz import it
    assert len(_modules_using(leading_to)) >= 3, _modules_using(leading_to)
    tape, (a, b, c), y, dead, after = _branching_tape()
    kept = leading_to(tape.records, [y])
    # viz's picture of a tensor: the op nodes are exactly the records leading to it
    graph = viz.to_networkx(y)
    assert sorted(d["op"] for _, d in graph.nodes(data=True) if d["kind"] == "op") == sorted(
        r.primitive.name for r in kept
    )
    # the tape's check: c reaches only the dead branch, so it is an unused source
    with pytest.raises(tg.TapeError, match="source 1 .* was not used"):
        tape.gradient(y, [a, c])
    ga, gb = tape.gradient(y, [a, b])
    assert ga is not None and gb is not None


def test_one_seed_builder_for_the_tape_the_trace_and_viz_explain():
    assert len(_modules_using(seed)) >= 3, _modules_using(seed)  # the tape, the trace's graph, viz.explain
    x = tg.tensor(torch.randn(3, dtype=F64), requires_grad=True)
    with tg.Tape(persistent=True) as tape:
        v = x * 3
    for call in (lambda: tape.gradient(v, x), lambda: viz.explain(tape, v)):
        with pytest.raises(tg.TapeError, match=r"the target has shape \(3,\); a non-scalar target needs grad_output"):
            call()
    with pytest.raises(tg.ShapeError, match=r"viz.explain: grad_output has shape \(2,\) but the target has shape"):
        viz.explain(tape, v, torch.ones(2))
    step = tg.trace(lambda x: x * 3)
    with pytest.raises(tg.TapeError, match=r"trace: the target has shape \(3,\); a non-scalar target needs a scalar"):
        step(x)
    g = torch.randn(3, dtype=F64)
    assert seed(v, g, raw=True) is g and torch.equal(seed(v, tg.Tensor(g), raw=False).data, g)
    assert isinstance(seed((x * x).sum(), None, raw=False), tg.Tensor)
