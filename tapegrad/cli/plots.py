"""Pictures of a training run with matplotlib's Agg backend (no display needed): curves and boundary."""

from __future__ import annotations

import math
from typing import Any

import torch

import tapegrad.nn as nn
from tapegrad._optional import require

__all__ = ["plot_curves", "plot_boundary"]


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "--plot/--boundary (pictures of a training run)")
    matplotlib.use("Agg")  # files only: works on machines with no display
    return require("matplotlib.pyplot", "--plot/--boundary (pictures of a training run)")


def _save(plt: Any, fig: Any, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)  # pyplot keeps every open figure alive


def plot_curves(history: Any, path: str, title: str = "") -> None:
    """Train/test loss and error rate per epoch (an `nn.History` with validation curves) into ``path``."""
    plt = _pyplot()
    epochs = range(1, len(history.loss) + 1)
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history.loss, label="train")
    if history.val_loss:
        ax_loss.plot(epochs, history.val_loss, label="test")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss", yscale="log")
    ax_err.plot(epochs, [100 * e for e in history.error_rate], label="train")
    if history.val_error_rate:
        ax_err.plot(epochs, [100 * e for e in history.val_error_rate], label="test")
    ax_err.set(xlabel="epoch", ylabel="error rate (%)", title="error rate")
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    _save(plt, fig, path)


def plot_boundary(
    model: Any,
    raw_train_x: torch.Tensor,
    raw_test_x: torch.Tensor,
    test_labels: Any,
    path: str,
    title: str = "",
    resolution: int = 200,
) -> None:
    """Decision regions of ``model`` over [0, 1]^2, the test points by true label and the true circle.

    Grid points are normalised with the training statistics, as the model's inputs were.
    """
    plt = _pyplot()
    ticks = torch.linspace(0, 1, resolution, dtype=raw_train_x.dtype)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    _, grid_n = nn.data.normalize(raw_train_x, grid)
    regions = nn.predict(model, grid_n).reshape(resolution, resolution)
    labels = test_labels.data if hasattr(test_labels, "data") else torch.as_tensor(test_labels)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.contourf(gx.numpy(), gy.numpy(), regions.numpy(), levels=[-0.5, 0.5, 1.5], colors=["#ffcdd2", "#bbdefb"])
    for label, colour, name in ((0, "#c62828", "outside (0)"), (1, "#1565c0", "inside (1)")):
        pts = raw_test_x[labels == label]
        ax.scatter(pts[:, 0].numpy(), pts[:, 1].numpy(), s=6, c=colour, label=f"test {name}")
    angle = torch.linspace(0, 2 * math.pi, 400)
    r = 1 / math.sqrt(2 * math.pi)
    ax.plot((0.5 + r * angle.cos()).numpy(), (0.5 + r * angle.sin()).numpy(), "k--", lw=1.2, label="true circle")
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xlabel="x1", ylabel="x2", title=title or "decision regions")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    _save(plt, fig, path)
