"""Draw the pictures of the docs with `viz`, from real tapes: ``python docs/figures.py [outdir]``.

``conf.py`` calls `build` on every Sphinx build, so the pictures never drift from the code.
Each figure is the code shown next to it on its page.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

import nn  # noqa: E402
import tapegrad as tg  # noqa: E402
import viz  # noqa: E402


def forward_tape() -> tuple[tg.Tape, tg.Tensor]:
    """The first example of the guide: y = sum(x * x) + mean(tanh(x))."""
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with tg.Tape(persistent=True) as tape:
        y = (x * x).sum() + x.tanh().mean()
    return tape, y


def higher_order_tape() -> tuple[tg.Tape, tg.Tensor]:
    """An outer tape records the inner tape's replay: the graph of dy/dx for y = x ** 3."""
    x = tg.tensor(2.0, requires_grad=True)
    with tg.Tape() as outer:
        with tg.Tape() as inner:
            y = x**3
        dy_dx = inner.gradient(y, x)
    return outer, dy_dx


def model_graph(**options) -> viz.TapeDigraph:
    """A small classifier and its loss (``options`` go to `viz.draw_model`)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    x, y = nn.data.disk_dataset(8, seed=0)
    return viz.draw_model(model, x, y, loss_fn=nn.CrossEntropyLoss(), **options)


def build(outdir: str | Path) -> list[Path]:
    """Write every figure of the docs as SVG into ``outdir``; returns the paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    tape, y = forward_tape()
    pictures = {
        "forward.svg": viz.draw(tape, y),
        "backward.svg": viz.draw(viz.trace_backward(tape, y)),
    }
    outer, dy_dx = higher_order_tape()
    pictures["higher_order.svg"] = viz.draw(outer, dy_dx)
    pictures["model.svg"] = model_graph(backward=True)
    pictures["model_collapsed.svg"] = model_graph(depth=1, legend=True)
    return [viz.save(graph, outdir / name) for name, graph in pictures.items()]


if __name__ == "__main__":
    for path in build(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "_figures"):
        print(path)
