"""Contenders written the way a user writes a training loop, and the traced step with its optimizer.

- ``user``: a ``tg.Tape`` per step, the batch sliced from a `tg.Tensor` holding the whole data
  set, ``tape.backward(loss)``, ``opt.step()``, ``opt.zero_grad()`` (what the README shows);
- ``traced+opt``: ``tg.trace(step, optimizer=opt)``: forward, backward and the SGD step in one
  traced call (a TorchScript graph with the update folded in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import tapegrad as tg
import tapegrad.nn as nn


def _setup(weights: list[torch.Tensor], sizes: tuple[int, ...], lr: float) -> tuple[nn.Sequential, nn.SGD, nn.MSELoss]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b), nn.ReLU() if i < len(sizes) - 2 else nn.Tanh()]
    model = nn.Sequential(*layers)
    for p, w in zip(model.parameters(), weights):
        p.data = w.clone()
    return model, nn.SGD(model.parameters(), lr=lr), nn.MSELoss()


def user_contender(
    weights: list[torch.Tensor], batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float, sizes: tuple[int, ...]
) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """Eager tapegrad as in the README: slice the batch, open a tape, backward, step, zero_grad."""
    model, opt, loss_fn = _setup(weights, sizes, lr)
    # Any: slicing is attached to tg.Tensor at import (tapegrad.torch_compat.methods), unseen by mypy
    xs: Any = tg.Tensor(torch.cat([x for x, _ in batches]))
    ys: Any = tg.Tensor(torch.cat([y for _, y in batches]))
    n, size = len(xs.data), len(batches[0][0])

    def epoch() -> None:
        for i in range(0, n, size):
            x, y = xs[i : i + size], ys[i : i + size]
            with tg.Tape() as tape:
                loss = loss_fn(model(x), y)
            tape.backward(loss)
            opt.step()
            opt.zero_grad()

    return epoch, [p.data for p in model.parameters()]


def traced_opt_contender(
    weights: list[torch.Tensor],
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    lr: float,
    sizes: tuple[int, ...],
    **trace_options: Any,
) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """``tg.trace(step, optimizer=opt)``: one call per training step, the optimizer folded in."""
    model, opt, loss_fn = _setup(weights, sizes, lr)
    tbatches = [(tg.Tensor(x), tg.Tensor(y)) for x, y in batches]
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, **trace_options)

    def epoch() -> None:
        for x, y in tbatches:
            step(x, y)

    return epoch, [p.data for p in model.parameters()]
