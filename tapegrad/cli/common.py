"""What every experiment command shares: the disk data, the seed network, its loss and optimizer.

Defaults are seed 002's: 2-25-25-25-2, ReLU hidden, Tanh output, MSE on +-1 targets, SGD
lr 0.001, batch 10, He init, inputs normalised by the training mean and std.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

import tapegrad.nn as nn

__all__ = [
    "Data",
    "load_data",
    "build_model",
    "build_loss",
    "build_optimizer",
    "round_seed",
    "mean_std",
    "progress_enabled",
    "sizes_of",
    "output_activation",
]


@dataclass
class Data:
    """Normalised train and test sets (tg.Tensors) and the raw training inputs (for the boundary plot)."""

    train: tuple[Any, Any]
    test: tuple[Any, Any]
    raw_train_x: torch.Tensor
    raw_test_x: torch.Tensor


def round_seed(seed: int, r: int) -> int:
    """The seed of round ``r``: weights, data and batch order of a round all derive from it."""
    return seed + r


def load_data(n_train: int, n_test: int, seed: int) -> Data:
    """Fresh train and test draws of the disk data set, both normalised by the training statistics."""
    x, y = nn.data.disk_dataset(n_train, seed=2 * seed)
    xt, yt = nn.data.disk_dataset(n_test, seed=2 * seed + 1)
    xn, xtn = nn.data.normalize(x, xt)
    return Data(train=(xn, y), test=(xtn, yt), raw_train_x=x.data, raw_test_x=xt.data)


def sizes_of(hidden: Sequence[int]) -> list[int]:
    """Layer widths: 2 inputs, the hidden widths, 2 outputs."""
    return [2, *hidden, 2]


def output_activation(loss: str) -> str | None:
    """Tanh on the outputs for the +-1 regression losses (seed 002); raw logits for cross-entropy."""
    return None if loss == "ce" else "tanh"


def build_model(
    hidden: Sequence[int], activation: str, loss: str, init: str = "he", gain: float = 1.0
) -> nn.Sequential:
    """The seed network as an `nn.Sequential` (layer indices match `tapegrad.cli.baseline.build_model`)."""
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    sizes = sizes_of(hidden)
    out_act = output_activation(loss)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b, init=init, gain=gain))
        name = out_act if i == len(sizes) - 2 else activation
        if name is not None:
            layers.append(acts[name]())
    return nn.Sequential(*layers)


def build_loss(name: str, reduction: str = "mean") -> nn.Module:
    """`nn.MSELoss`, `nn.L1Loss` (MAE) or `nn.CrossEntropyLoss` with ``reduction``.

    ``"mean"`` averages over every element (torch's default); ``"batchmean"`` sums and divides
    by the batch size: seed 002's (1/N) * sum_i ||y_i - yhat_i||^2, twice the mean for two outputs.
    """
    return {"mse": nn.MSELoss, "mae": nn.L1Loss, "ce": nn.CrossEntropyLoss}[name](reduction=reduction)


def build_optimizer(
    name: str,
    params: Iterable[Any],
    lr: float,
    momentum: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> nn.Optimizer:
    """`nn.SGD` (lr, momentum) or `nn.Adam` (lr, betas, eps)."""
    if name == "sgd":
        return nn.SGD(params, lr=lr, momentum=momentum)
    return nn.Adam(params, lr=lr, betas=betas, eps=eps)


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def progress_enabled(args: argparse.Namespace) -> bool:
    """Progress (a bar, or lines in a log: `tapegrad.progress.Progress`) unless ``--quiet`` or ``--json``."""
    return not args.quiet and not args.json
