"""viz.explain: the reverse sweep step by step; on a 3-op scalar example, the hand-computed chain rule."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
import torch

import nn
import tapegrad as tg
import viz
from tapegrad.cli.dispatch import main
from viz.formulas import formula
from viz.rules import rule_text

F64 = torch.float64


def three_ops(x0: float = 0.5):
    x = tg.tensor(x0, dtype=F64, requires_grad=True)
    with tg.Tape() as tape:
        a = x * x
        b = a.sin()
        c = b * 3
    return tape, x, a, b, c


def test_three_op_scalar_example_is_the_hand_computed_chain_rule():
    x0 = 0.5
    tape, x, a, b, c = three_ops(x0)
    e = viz.explain(tape, c, names={"x": x, "a": a, "b": b, "c": c})
    # by hand: c = 3 sin(x^2); dc/db = 3, dc/da = 3 cos(x^2), each factor of a = x * x sends x * dc/da
    dc_db = 3.0
    dc_da = dc_db * math.cos(x0 * x0)
    half = dc_da * x0
    assert [s.op for s in e.steps] == ["mul", "sin", "mul"]
    assert [s.output for s in e.steps] == ["c", "b", "a"]
    assert [s.incoming.item() for s in e.steps] == [1.0, dc_db, dc_da]
    assert [(x.label, x.gradient.item()) for x in e.steps[0].sends] == [("b", dc_db)]
    assert [(x.label, x.gradient.item()) for x in e.steps[1].sends] == [("a", dc_da)]
    sends = [(x.label, x.position, x.gradient.item()) for x in e.steps[2].sends]
    assert sends == [("x", 0, half), ("x", 1, half)]
    assert e.leaves[0][0] == "x" and e.leaves[0][1].item() == 2 * half

    text = str(e)
    assert "step 1: c = mul(b, 3)" in text
    assert f"incoming  dL/db = {dc_db:.6g}" in text
    assert f"sends     dL/da += {dc_da:.6g}" in text
    assert f"dL/dx += {half:.6g}" in text and f"dL/dx = {2 * half:.6g}" in text
    assert "rule      dL/da = g ⊙ cos(x)" in text  # the formula, in the rule's argument names
    assert "with      g = dL/dc, out = c, x = b, y = 3" in text


def test_explaining_does_not_use_up_a_one_shot_tape_and_watched_tensors_get_gradients():
    x = tg.tensor([0.5, 1.5], dtype=F64)  # watched, not requiring grad
    with tg.Tape() as tape:
        tape.watch(x)
        y = (x * x).sum()
    e = viz.explain(tape, y, names={"x": x})
    assert [n for n, _ in e.leaves] == ["x"] and torch.equal(e.leaves[0][1], 2 * x.data)
    assert torch.equal(tape.gradient(y, x).data, 2 * x.data)  # the walk the explanation listened to left it


def test_the_explanation_agrees_with_the_tape_gradient_on_a_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))
    xb, yb = nn.data.disk_dataset(6, seed=0)
    with tg.Tape(persistent=True) as tape:
        loss = nn.CrossEntropyLoss()(model(tg.Tensor(xb)), yb)
    params = list(model.parameters())
    expected = tape.gradient(loss, params)
    e = viz.explain(tape, loss)
    leaves = dict(e.leaves)
    names = [n for n, _ in model.named_parameters()]
    assert set(leaves) == set(names)  # the input batch does not require grad: no gradient is sent to it
    for name, g in zip(names, expected):
        torch.testing.assert_close(leaves[name], g.data)
    linear = [s for s in e.steps if s.op == "linear"]
    assert linear[0].module == "2 (Linear)" and linear[-1].module == "0 (Linear)"
    assert [x.label for x in linear[0].sends] == ["v1", "2.weight", "2.bias"]
    # the sends of each step add up to the next steps' incoming gradients
    by_output = {s.output: s.incoming for s in e.steps}
    for s in e.steps:
        for x in s.sends:
            if x.label in by_output:
                assert by_output[x.label].shape == x.gradient.shape


def test_markdown_and_html_tables():
    tape, x, a, b, c = three_ops()
    e = viz.explain(tape, c, names={"x": x, "c": c})
    md = e.to_markdown().splitlines()
    assert md[0] == "| step | op | module | incoming gradient | with | rule (VJP) | sends |"
    assert len(md) == 2 + 3 and md[2].startswith("| 1 | c = mul(v1, 3) |")
    page = e._repr_html_()
    assert page.startswith("<table>") and page.count("<tr>") == 4 and "dL/dc = 1" in page
    tape2, x2, _, _, c2 = three_ops()
    page2 = viz.explain(tape2, c2, names={"<b>x</b>": x2})._repr_html_()
    assert "<b>x</b>" not in page2 and "dL/d&lt;b&gt;x&lt;/b&gt;" in page2


def test_user_rules_checkpoint_and_non_scalar_targets():
    @tg.custom_vjp
    def square(v):
        return v * v

    def square_bwd(res, g):
        """Twice the input times g."""
        return (g * res * 2,)

    square.defvjp(lambda v: (v * v, v), square_bwd)
    x = tg.Tensor(torch.tensor([1.0, 2.0], dtype=F64), requires_grad=True)
    with tg.Tape() as tape:
        y = tg.checkpoint(lambda v: square(v).sin(), x)
    e = viz.explain(tape, y, grad_output=tg.Tensor(torch.ones(2, dtype=F64)))
    (step,) = e.steps
    assert step.op == "checkpoint" and "shape (2,)" in str(e)
    expected = 2 * x.data * (x.data**2).cos()
    torch.testing.assert_close(step.sends[0].gradient, expected)
    with tg.Tape() as tape:
        z = square(x).sum()
    text = str(viz.explain(tape, z))
    assert "square_bwd - Twice the input times g." in text


def test_graph_command_prints_the_explanation(tmp_path, capsys):
    assert main(["graph", "--out", str(tmp_path / "g.dot"), "--explain", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Reverse sweep towards loss, seeded with dL/dloss = 1")
    assert "dL/d0.weight" in out and "rule      dL/d0.weight = gᵀ x" in out and "(Linear)" in out
    assert main(["graph", "--out", str(tmp_path / "g.dot"), "--explain", "--json"]) == 0
    steps = json.loads(capsys.readouterr().out)["explanation"]
    assert steps[0]["step"] == "1" and steps[0]["incoming gradient"] == "dL/dloss = 1"


@pytest.mark.parametrize("loss, activation", [("mse", "relu"), ("mae", "sigmoid"), ("ce", "tanh")])
def test_every_rule_of_the_seed_network_is_a_formula_under_its_public_op_name(loss, activation, tmp_path, capsys):
    argv = ["graph", "--explain", "--hidden", "3", "--batch-size", "2", "--loss", loss, "--activation", activation]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rules, in_rules = [], False
    for line in out.splitlines():  # the lines from "  rule" up to "  sends" of each step
        in_rules = line.startswith("  rule") or (in_rules and not line.startswith("  sends"))
        if in_rules:
            rules.append(line[12:].strip())
    assert rules and all(r.startswith("dL/d") and " = " in r for r in rules), rules  # no code, no d/dx: fallback
    assert not re.search(r"(= |: )_\w", out)  # no private op or rule names
    assert "(Linear)" in out and "gᵀ x" in out


def test_an_op_without_a_formula_shows_its_rule_and_a_private_rules_docstring_not_its_name():
    def _private(g: Any, out: Any, x: Any) -> Any:
        """Twice x times g."""
        return g * x * 2

    assert rule_text(_private).startswith("Twice x times g.  (test_viz_explain.py:")
    assert formula("no_such_op", 0) == "" and formula("linear", 1) == "gᵀ x" and formula("neg", 1) == ""
