"""Rendering with the Graphviz `dot` program: SVG/PNG/PDF by suffix, notebooks, a missing `dot`."""

import xml.etree.ElementTree as ET

import graphviz
import pytest
import torch

import nn
import tapegrad as tg
import viz

SVG = "{http://www.w3.org/2000/svg}"


def drawn(**options):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))
    return viz.draw_model(model, torch.randn(5, 2), torch.tensor([0, 1, 1, 0, 1]), nn.CrossEntropyLoss(), **options)


def test_svg_is_valid_xml_with_the_cluster_labels(tmp_path):
    path = viz.save(drawn(backward=True, legend=True), tmp_path / "graph.svg")
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    clusters = [g for g in root.iter(f"{SVG}g") if g.get("class") == "cluster"]
    titles = {g.find(f"{SVG}text").text for g in clusters}
    assert {"0 (Linear)", "1 (Tanh)", "2 (Linear)", "Sequential", "CrossEntropyLoss"} <= titles
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "0.weight" in texts and "cross_entropy" in texts
    assert any(t and t.startswith("grad norm") for t in texts)


def test_save_picks_the_format_from_the_suffix(tmp_path):
    dot = drawn(depth=1)
    assert viz.save(dot, tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")
    assert viz.save(dot, tmp_path / "g.pdf").read_bytes().startswith(b"%PDF")
    assert viz.save(dot, tmp_path / "g.dot").read_text(encoding="utf-8") == dot.source
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.Tape() as tape:
        y = x.exp().sum()
    assert "exp" in viz.save(tape, tmp_path / "t.gv", target=y).read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="use .svg, .png, .pdf or .dot"):
        viz.save(dot, tmp_path / "g.txt")


def test_notebooks_display_it_through_graphviz_rich_display():
    bundle = drawn()._repr_mimebundle_(include=["image/svg+xml"])
    assert isinstance(drawn(), graphviz.Digraph)
    assert "0 (Linear)" in bundle["image/svg+xml"]


def test_missing_dot_program_says_how_to_install_graphviz(tmp_path, monkeypatch):
    dot = drawn()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # `dot` cannot be found
    for render in (
        lambda: viz.save(dot, tmp_path / "g.svg"),
        lambda: dot.pipe(format="svg"),
        lambda: dot.render(tmp_path / "g", format="png"),
        lambda: dot._repr_mimebundle_(include=["image/svg+xml"]),
    ):
        with pytest.raises(viz.GraphvizNotFoundError, match="Install Graphviz") as err:
            render()
        assert "apt-get install graphviz" in str(err.value) and "graphviz.org/download" in str(err.value)
        assert isinstance(err.value, graphviz.ExecutableNotFound)
    assert "cluster_" in dot.source
    assert viz.save(dot, tmp_path / "still.dot").read_text(encoding="utf-8") == dot.source
