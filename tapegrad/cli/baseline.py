"""The PyTorch baseline of `tapegrad compare`: the same network trained with torch.nn + autograd + torch.optim.

This is the one module of the library allowed to use torch.nn, torch.autograd and
torch.optim: it is the reference tapegrad is measured against, never a dependency of it.
It takes the tapegrad model's weights (a state dict of plain torch tensors) and the same
batches (a permutation per epoch from a generator seeded like `nn.fit`'s), so both sides
start from the same point and see the same data.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["TorchRun", "build_model", "make_loss", "make_optimizer", "train", "error_rate"]

_ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}


@dataclass
class TorchRun:
    """What a baseline training run measured: seconds spent in the training steps (wall and this
    process's CPU time), test error rate, and the training set's error rate after each epoch."""

    train_time: float
    error_rate: float
    loss: list[float]
    train_cpu_time: float = 0.0
    train_error_rate: list[float] = field(default_factory=list)


def build_model(sizes: Sequence[int], activation: str, output_activation: str | None) -> torch.nn.Sequential:
    """``Linear`` layers of ``sizes`` with ``activation`` between them and ``output_activation`` at the end.

    Layer indices match `tapegrad.cli.common.build_model`, so state dicts load across.
    """
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        last = i == len(sizes) - 2
        name = output_activation if last else activation
        if name is not None:
            layers.append(_ACTIVATIONS[name]())
    return torch.nn.Sequential(*layers)


class _BatchMean(torch.nn.Module):
    """A torch loss with ``reduction="sum"``, divided by the batch size (tapegrad's ``"batchmean"``)."""

    def __init__(self, summed: torch.nn.Module) -> None:
        super().__init__()
        self.summed = summed

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The summed loss over ``len(input)``."""
        return self.summed(input, target) / len(input)


def make_loss(name: str, reduction: str = "mean") -> torch.nn.Module:
    """torch's loss for ``mse``, ``mae`` or ``ce``; ``"batchmean"`` is its summed loss over the batch size."""
    cls = {"mse": torch.nn.MSELoss, "mae": torch.nn.L1Loss, "ce": torch.nn.CrossEntropyLoss}[name]
    if reduction == "batchmean":
        return _BatchMean(cls(reduction="sum"))
    return cls(reduction=reduction)


def make_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], lr: float, momentum: float, betas: tuple[float, float], eps: float
) -> torch.optim.Optimizer:
    """torch.optim.SGD or torch.optim.Adam with the command's hyperparameters."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)


def _targets(labels: torch.Tensor, loss: str, width: int, dtype: torch.dtype) -> torch.Tensor:
    """Class indices for cross-entropy; +-1 rows (seed 002) for the regression losses."""
    if loss == "ce":
        return labels
    out = torch.full((len(labels), width), -1.0, dtype=dtype)
    out.scatter_(1, labels.long().unsqueeze(1), 1.0)
    return out


def error_rate(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``x`` whose argmax output is not its label."""
    with torch.no_grad():
        return float((model(x).argmax(1) != labels).double().mean())


def train(
    model: torch.nn.Module,
    loss: str,
    optimizer: torch.optim.Optimizer,
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
    batch_size: int,
    seed: int,
    reduction: str = "mean",
) -> TorchRun:
    """Mini-batch training in the textbook torch loop; only the training steps are timed.

    Batch order: one ``torch.randperm`` per epoch from ``torch.Generator().manual_seed(seed)``,
    as `nn.data.Batches` draws it, so the tapegrad run with the same seed sees the same batches.
    After every epoch the training set is scored, untimed, as `nn.fit` scores it: whatever that
    leaves behind for the next epoch's steps then weighs on both sides alike (with several torch
    threads, the scoring's one large forward runs on OpenMP's worker threads, which then spin
    for some milliseconds, CPU time counted in the next epoch; docs/performance.md).
    """
    x, labels = train_data
    width = model(x[:1]).shape[1]
    y = _targets(labels, loss, width, x.dtype)
    loss_fn = make_loss(loss, reduction)
    generator = torch.Generator().manual_seed(seed)
    n = len(x)
    elapsed, cpu, losses, train_errors = 0.0, 0.0, [], []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        xs, ys = x[order], y[order]
        total = 0.0
        start, cpu_start = time.perf_counter(), time.process_time()
        for i in range(0, n, batch_size):
            xb, yb = xs[i : i + batch_size], ys[i : i + batch_size]
            optimizer.zero_grad()
            batch_loss = loss_fn(model(xb), yb)
            batch_loss.backward()
            optimizer.step()
            total += batch_loss.item() * len(xb)
        elapsed += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        losses.append(total / n)
        model.eval()
        train_errors.append(error_rate(model, x, labels))
        model.train()
    return TorchRun(elapsed, error_rate(model, *test_data), losses, cpu, train_errors)
