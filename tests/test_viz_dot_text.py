"""DOT text and `graph --explain` need no graphviz: the fallback writer gives graphviz's text byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import graphviz
import pytest
from test_packaging import BLOCK_EXTRAS

from tapegrad.cli import main
from viz import _dotwriter

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ["graph", "--hidden", "4,3", "--batch-size", "3", "--backward", "--activation", "tanh"]


def run_without_graphviz(tmp_path: Path, argv: list[str]) -> subprocess.CompletedProcess:
    code = BLOCK_EXTRAS + "from tapegrad.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip


def test_graph_dot_and_explain_run_without_graphviz_and_give_graphviz_text(tmp_path):
    proc = run_without_graphviz(tmp_path, [*GRAPH, "--out", "g.dot", "--explain"])
    assert proc.returncode == 0, proc.stderr
    assert "dL/d" in proc.stdout and proc.stdout.startswith("wrote g.dot")
    assert main([*GRAPH, "--out", str(tmp_path / "real.dot"), "--quiet"]) == 0  # with graphviz, in this process
    assert (tmp_path / "g.dot").read_text() == (tmp_path / "real.dot").read_text()
    svg = run_without_graphviz(tmp_path, [*GRAPH, "--out", "g.svg"])
    assert svg.returncode == 2 and "pip install 'tapegrad[viz]'" in svg.stderr
    alone = run_without_graphviz(tmp_path, [*GRAPH, "--explain"])  # no --out: no picture, no extra
    assert alone.returncode == 0 and alone.stdout.startswith("Reverse sweep") and not (tmp_path / "graph.svg").exists()


@pytest.mark.parametrize(
    "text", ["spam", "spam spam", "-4.2", ".42", "<<b>x</b>>", 'a"b', 'a\\"b', "node", "", "x\\ny", "(2, 3)"]
)
def test_quoting_is_graphviz_quoting(text):
    assert _dotwriter.quote(text) == graphviz.quoting.quote(text)
    assert _dotwriter.quote(_dotwriter.nohtml(text)) == graphviz.quoting.quote(graphviz.nohtml(text))


def test_the_writer_builds_graphviz_source_and_says_rendering_needs_the_extra():
    ours, theirs = (
        m.Digraph("g", graph_attr={"rankdir": "TB"}, node_attr={"shape": "box"}) for m in (_dotwriter, graphviz)
    )
    for g, sub in ((ours, _dotwriter.Digraph("cluster_0")), (theirs, graphviz.Digraph("cluster_0"))):
        g.attr(label="a title", labelloc="t")
        sub.attr(label="inner")
        sub.node("n1", label="x (2, 3)", fillcolor="#fff")
        g.subgraph(sub)
        g.node("n0", style="")
        g.edge("n0", "n1", label="e")
    assert ours.source == theirs.source
    with pytest.raises(ImportError, match=r"tapegrad\[viz\]"):
        ours.pipe(format="svg")
