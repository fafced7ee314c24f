"""docs/tutorial.ipynb runs in a Jupyter kernel (nbclient): progress is a bar there, with no warning."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def test_the_tutorial_notebook_runs_and_shows_a_bar_and_tables(tmp_path):
    nb = nbformat.read(ROOT / "docs" / "tutorial.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    everything = json.dumps([c.outputs for c in code])
    assert "TqdmWarning" not in everything and "IProgress" not in everything and '"error"' not in everything
    gradient, fit, summary, accuracy = code
    assert "Tensor([2., 4., 6.]" in gradient.outputs[0]["data"]["text/plain"]
    if importlib.util.find_spec("ipywidgets") is not None:  # a widget
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in fit.outputs)
    else:  # tqdm's text bar on stderr, redrawn with carriage returns (not one line per epoch)
        err = "".join(o["text"] for o in fit.outputs if o.get("name") == "stderr")
        assert "fit: 100%" in err and "30/30" in err and "\r" in err and "epoch 1:" not in err
    table = summary.outputs[0]["data"]
    assert table["text/html"].startswith("<table>") and table["text/plain"].startswith("module")
    assert float(accuracy.outputs[0]["text"].split()[-1]) > 0.9
