"""viz.draw: golden DOT text, determinism, clusters, collapsing by depth and max_nodes."""

import os
import re
import sys
from pathlib import Path

import pytest
import torch

import nn
import tapegrad as tg
import viz

GOLDEN = Path(__file__).parent / "golden"


def tiny_tape(seed=0):
    """A 2-3-1 regressor with an MSE loss: the golden model (labels hold shapes, not values)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    x = tg.tensor(torch.randn(4, 2))
    with tg.Tape() as tape:
        loss = nn.MSELoss()(model(x), tg.tensor(torch.randn(4, 1)))
    return model, tape, loss


def check_golden(name: str, source: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(source, encoding="utf-8")
    assert source == path.read_text(encoding="utf-8"), f"{name} changed; rerun with UPDATE_GOLDEN=1 if on purpose"


def test_golden_dot_of_a_tiny_model():
    _, tape, loss = tiny_tape()
    check_golden("viz_tiny.dot", viz.draw(tape, loss, legend=True).source)


def test_golden_dot_collapsed_to_depth_one():
    _, tape, loss = tiny_tape()
    check_golden("viz_tiny_depth1.dot", viz.draw(tape, loss, depth=1, rankdir="LR").source)


def test_same_model_gives_the_same_source_byte_for_byte():
    a = viz.draw(tiny_tape(seed=0)[2]).source
    b = viz.draw(tiny_tape(seed=1)[2]).source  # other weights, other objects, other ids
    assert a == b
    assert not re.search(r"\d{9,}", a), "no id() in the DOT text"


def test_clusters_parameters_and_shapes_are_in_the_source():
    _, tape, loss = tiny_tape()
    src = viz.draw(tape, loss, show_dtype=True).source
    for label in ("0 (Linear)", "1 (ReLU)", "2 (Linear)", "Sequential", "MSELoss"):
        assert f'label="{label}"' in src or f"label={label} " in src
    assert src.count("subgraph cluster_") == 5
    assert 'label="0.weight\\n3×2\\nfloat32"' in src
    assert 'label="linear\\n4×3\\nfloat32"' in src
    assert "rankdir=TB" in src


def test_depth_collapses_modules_into_boxes_with_in_out_shapes():
    _, tape, loss = tiny_tape()
    src = viz.draw(tape, loss, depth=1).source
    assert 'label="0 (Linear)\\n4×2 → 4×3\\n9 params"' in src
    assert 'label="2 (Linear)\\n4×3 → 4×1\\n4 params"' in src
    assert "0.weight" not in src and "shape=box3d" in src
    top = viz.draw(tape, loss, depth=0).source
    assert 'label="Sequential\\n4×2 → 4×1\\n13 params"' in top and "cluster_" not in top
    assert viz.draw(tape, loss, depth=9).source == viz.draw(tape, loss).source
    squeezed = viz.draw(tape, loss, max_nodes=6).source
    note = '\tlabel="modules at depth 0 drawn as boxes to stay under max_nodes=6" labelloc=t\n'
    assert note in squeezed and squeezed.replace(note, "") == top


def test_backward_view_prints_gradient_norms():
    model, tape, loss = tiny_tape()
    trace = viz.trace_backward(tape, loss)
    src = viz.draw(trace, show_values=True).source
    assert src.count("grad norm") == len(trace.records) + 1 + 2 + 4  # ops, output, x and target, params
    assert "mean " in src and "std " in src
    forward = viz.draw_model(model, torch.randn(4, 2), torch.randn(4, 1), nn.MSELoss())
    backward = viz.draw_model(model, torch.randn(4, 2), torch.randn(4, 1), nn.MSELoss(), backward=True)
    assert "grad norm" not in forward.source and "grad norm" in backward.source
    assert forward.source.replace("grad norm", "") != backward.source
    assert all(p.grad is None for p in model.parameters())


def chain(n_ops: int, scoped: bool):
    x = tg.tensor(torch.ones(3), requires_grad=True)
    with tg.Tape() as tape:
        h = x
        for i in range(n_ops // 2):
            if scoped:
                with tg.scope(f"block{i // 250}"), tg.scope(str(i % 250)):
                    h = (h * 0.5).sin()
            else:
                h = (h * 0.5).sin()
    return tape, h


def node_count(source: str) -> int:
    return len(re.findall(r"^\t+(?:n|m|s)\d+ \[", source, flags=re.M))


def test_ten_thousand_ops_export_and_collapse_under_max_nodes():
    assert sys.getrecursionlimit() < 10_000  # a recursive walk would fail here
    tape, out = chain(10_000, scoped=True)
    assert len(tape) == 10_000
    g = viz.to_networkx(tape, out)
    assert g.number_of_nodes() == 10_000 + 1 + 1 + 5_000  # ops, input, output, constants
    assert viz.graph_depth(g) == 10_000
    src = viz.draw(g, max_nodes=100).source
    assert node_count(src) == 20 + 2  # the 20 blocks, the input and the output
    assert "drawn as boxes to stay under max_nodes=100" in src
    full = viz.draw(g, max_nodes=None, show_constants=False).source
    assert node_count(full) == 10_000 + 2 and full.count("subgraph cluster_") == 20 + 5_000


def test_a_flat_ten_thousand_op_graph_collapses_into_segments():
    tape, out = chain(10_000, scoped=False)
    src = viz.draw(out, max_nodes=50).source
    assert 1 < node_count(src) <= 50
    assert "segments in tape order" in src
    assert "ops: mul×" in src or "ops: sin×" in src


def test_a_traced_steps_graph_is_drawn_with_the_graphs_names():
    torch.manual_seed(0)
    model, loss_fn = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)), nn.MSELoss()
    step = tg.trace(lambda x, y: loss_fn(model(x), y))
    step(tg.Tensor(torch.rand(3, 2)), tg.Tensor(torch.rand(3, 1)))
    src = viz.draw_traced(step).source
    nodes = [n.name for n in step.graph_module().graph.nodes if n.op != "output"]
    assert all(f"\t{name} [" in src for name in nodes)  # every node, under the graph's own name
    assert "cluster_backward" in src and "linear_2_vjp1 -> " not in src  # a gradient is an output
    assert "input_0 -> linear_0" in src and "forward linear" in src and "vjp relu_input0" in src
    with pytest.raises(TypeError, match="expected a tg.trace step or a torch.fx.GraphModule, got list"):
        viz.draw_traced([])
