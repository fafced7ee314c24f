"""viz.to_networkx: the graph is the tape (topology, names, modules), plus backward and analysis."""

import math

import pytest
import torch

import nn
import tapegrad as tg
import viz


def tiny(seed=0):
    """A 2-3-2 classifier, a batch and its recorded loss."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    x = tg.tensor(torch.randn(4, 2))
    y = torch.tensor([0, 1, 1, 0])
    with tg.Tape(persistent=True) as tape:
        loss = nn.CrossEntropyLoss()(model(x), y)
    return model, x, tape, loss


def test_topology_equals_the_tape_records():
    _, x, tape, loss = tiny()
    g = viz.to_networkx(tape, loss)
    records = tape.records
    assert sorted(g.nodes) == list(range(g.number_of_nodes()))
    assert all(u < v for u, v in g.edges), "node ids are in tape order"
    ops = [n for n in g.nodes if g.nodes[n]["kind"] == "op"]
    assert len(ops) == len(records)
    node_tensor = {}
    for op, r in zip(ops, records):
        d = g.nodes[op]
        assert d["op"] == r.primitive.name
        assert d["out_shape"] == tuple(r.output.shape)
        node_tensor[op] = r.output
    for op, r in zip(ops, records):
        positions = []
        for u in g.predecessors(op):
            for p in g.edges[u, op]["args"]:
                positions.append(p)
                t = r.inputs[p]
                if u in node_tensor:
                    assert node_tensor[u] is t, f"node {u} stands for two tensors"
                else:
                    node_tensor[u] = t
        assert sorted(positions) == list(range(len(r.inputs)))
    outputs = [n for n in g.nodes if g.nodes[n]["kind"] == "output"]
    assert len(outputs) == 1 and list(g.predecessors(outputs[0])) == [ops[-1]]
    assert node_tensor[0] is x and g.nodes[0]["kind"] == "input"


def test_parameter_names_and_modules_come_from_the_scopes():
    model, _, tape, loss = tiny()
    g = viz.to_networkx(tape, loss)
    params = {d["name"]: d for _, d in g.nodes(data=True) if d["kind"] == "parameter"}
    assert sorted(params) == sorted(name for name, _ in model.named_parameters())
    assert params["2.bias"]["out_shape"] == (2,) and params["2.bias"]["module"] == "2 (Linear)"
    labels = [m["label"] for m in g.graph["modules"]]
    assert labels == ["Sequential", "0 (Linear)", "1 (ReLU)", "2 (Linear)", "CrossEntropyLoss"]
    relu = next(d for _, d in g.nodes(data=True) if d["op"] == "relu")
    assert relu["module"] == "1 (ReLU)" and relu["dtype"] == "float32" and relu["device"] == "cpu"
    assert relu["requires_grad"] is True
    assert g.graph["backward"] is False and all("grad_norm" not in d for _, d in g.nodes(data=True))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
        self.head = nn.Linear(3, 1)
        self.unused = nn.Linear(3, 3)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.head(self.encoder(x)) * self.scale


def test_nested_modules_give_dotted_names_and_nested_clusters():
    net = Net()
    with tg.Tape() as tape:
        out = net(tg.tensor(torch.randn(5, 2))).sum()
    g = viz.to_networkx(tape, out)
    names = sorted(d["name"] for _, d in g.nodes(data=True) if d["kind"] == "parameter")
    assert names == ["encoder.0.bias", "encoder.0.weight", "head.bias", "head.weight", "scale"]
    mods = g.graph["modules"]
    inner = next(m for m in mods if m["path"] == "encoder.0")
    assert inner["label"] == "encoder.0 (Linear)" and mods[inner["parent"]]["label"] == "encoder (Sequential)"
    assert inner["depth"] == 2
    assert viz.unused_parameters(g, net) == ["unused.weight", "unused.bias"]
    counts = viz.parameter_count(g)
    assert counts == {"": 6 + 3 + 3 + 1 + 1, "encoder": 9, "encoder.0": 9, "head": 4}
    src = viz.draw(g).source
    outer = src.index('label="encoder (Sequential)"')
    assert outer < src.index('label="encoder.0 (Linear)"') < src.index('label="head (Linear)"')


def test_a_tensor_keeps_only_the_records_that_lead_to_it_and_a_tape_marks_the_rest_dead():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([0.5, -1.0], requires_grad=True)
    with tg.Tape() as tape:
        side = (x * w).exp()  # computed for nothing
        loss = (x * 3.0).tanh().sum()
    g_tensor = viz.to_networkx(loss)
    assert [d["op"] for _, d in g_tensor.nodes(data=True) if d["kind"] == "op"] == ["mul", "tanh", "sum"]
    assert viz.dead_nodes(g_tensor) == []
    g_tape = viz.to_networkx(tape, loss, params={"w": w})
    dead = viz.dead_nodes(g_tape)
    assert sorted(g_tape.nodes[n]["op"] or g_tape.nodes[n]["name"] for n in dead) == ["exp", "mul", "w"]
    assert viz.unused_parameters(g_tape) == ["w"]
    assert "dashed" in viz.draw(g_tape).source
    assert side.shape == (2,)
    const = [d for _, d in g_tensor.nodes(data=True) if d["kind"] == "constant"]
    assert [c["name"] for c in const] == ["3"]
    assert viz.graph_depth(g_tensor) == 3


def test_without_a_target_every_sink_is_an_output():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.Tape() as tape:
        a, b = x.exp(), x.sin()
    g = viz.to_networkx(tape)
    outs = [d for _, d in g.nodes(data=True) if d["kind"] == "output"]
    assert [o["name"] for o in outs] == ["output", "output"] and viz.dead_nodes(g) == []
    assert a.shape == b.shape


def test_trace_backward_gives_every_node_the_gradient_norm_torch_gets():
    torch.manual_seed(1)
    xd, wd = torch.randn(3, 4, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    x, w = tg.tensor(xd), tg.tensor(wd, requires_grad=True)
    with tg.Tape() as tape:
        h = (x @ w).tanh()
        loss = (h * h).sum()
    trace = viz.trace_backward(tape, loss)
    g = viz.to_networkx(trace)
    tw = wd.clone().requires_grad_(True)
    th = (xd @ tw).tanh()
    th.retain_grad()
    (th * th).sum().backward()
    node = {d["op"] or d["name"] or d["kind"]: d for _, d in g.nodes(data=True)}
    assert math.isclose(node["tanh"]["grad_norm"], float(th.grad.norm()), rel_tol=1e-12)
    w_node = next(d for _, d in g.nodes(data=True) if d["kind"] == "input" and d["requires_grad"])
    assert math.isclose(w_node["grad_norm"], float(tw.grad.norm()), rel_tol=1e-12)
    assert node["loss"]["grad_norm"] == 1.0 and g.graph["backward"] is True
    assert w.grad is None, "the trace leaves .grad alone"
    with pytest.raises(tg.TapeError, match="released its records"):
        viz.to_networkx(tape)


def test_backward_marks_nonfinite_gradients_and_parameters_without_gradient():
    x = tg.tensor([0.0, 4.0], requires_grad=True)
    p = nn.Parameter(torch.tensor([1.0, 1.0]))
    with tg.Tape() as tape:
        side = p * 2.0
        loss = x.sqrt().sum()
    g = viz.to_networkx(viz.trace_backward(tape, loss))
    x_node = next(d for _, d in g.nodes(data=True) if d["kind"] == "input")
    assert x_node["grad_finite"] is False and math.isinf(x_node["grad_norm"])
    p_node = next(d for _, d in g.nodes(data=True) if d["kind"] == "parameter")
    assert p_node["no_grad"] is True and p_node["dead"] is True
    src = viz.draw(g).source
    assert "color=red" in src and "no gradient" in src
    assert side.shape == (2,)


def test_forward_nan_gets_a_red_border_and_leaf_grads_count_as_a_backward_pass():
    x = tg.tensor([-1.0, 4.0], requires_grad=True)
    with tg.Tape(persistent=True) as tape:
        y = x.log()  # held: the values of a tensor no VJP saves are released once nothing holds them
        loss = y.sum()
        z = (x * 2).sum()
    g = viz.to_networkx(tape, loss)
    log = next(d for _, d in g.nodes(data=True) if d["op"] == "log")
    assert log["finite"] is False and not g.graph["backward"]
    doubled = next(d for _, d in g.nodes(data=True) if d["op"] == "mul")  # released: its shape is shown
    assert doubled["released"] is True and doubled["out_shape"] == (2,) and z.data.isfinite()
    tape.backward(loss)
    g = viz.to_networkx(tape, loss)
    assert g.graph["backward"] and math.isclose(g.nodes[0]["grad_norm"], math.hypot(1.0, 0.25))


def test_bad_sources_raise_clear_errors():
    with pytest.raises(tg.TapeError, match="not recorded"):
        viz.to_networkx(tg.tensor([1.0]))
    with pytest.raises(TypeError, match="expected a tg.Tape"):
        viz.to_networkx(3)
    x = tg.tensor([1.0], requires_grad=True)
    with tg.Tape() as tape:
        x.exp()
    with pytest.raises(tg.TapeError, match="not recorded"):
        viz.to_networkx(tape, tg.tensor([2.0]))


def test_summary_lists_every_op_with_its_module_and_parameters():
    model, x, tape, loss = tiny()
    text = viz.summary(tape)
    lines = text.splitlines()
    assert lines[0].split() == ["module", "op", "output", "shape", "params"]
    rows = lines[2 : 2 + len(tape)]
    assert rows[0].startswith("0 (Linear)") and rows[0].split()[-1] == "9"
    assert "relu" in rows[1] and "(4, 3)" in rows[1]
    assert "parameters used: 17" in text
    by_model = viz.summary(model, x)
    assert "parameters in model: 17" in by_model and "CrossEntropyLoss" not in by_model
    assert "0 (Linear)" in viz.summary(model) and "parameters: 17" in viz.summary(model)
