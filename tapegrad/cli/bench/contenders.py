"""The contenders of the seed benchmark: the seed network as each builds it, and one epoch of
training as each runs it. Each contender returns (epoch function, its parameters as torch tensors).

- ``floor``: raw torch forward, hand-written backward, in-place SGD (no graph at all);
- ``torch``: ``torch.nn`` + ``torch.optim.SGD`` + ``loss.backward()``;
- ``tapegrad``: ``nn.Sequential`` / ``nn.MSELoss`` / ``nn.SGD`` under a ``tg.Tape``;
- ``traced``: the same step through ``tg.trace`` (recorded once, then replayed), then ``nn.SGD``;
- ``user``: a ``tg.Tape`` per step, the batch sliced from a `tg.Tensor` holding the whole data
  set, ``tape.backward(loss)``, ``opt.step()``, ``opt.zero_grad()`` (what the README shows);
- ``traced+opt``: ``tg.trace(step, optimizer=opt)``: forward, backward and the SGD step in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import tapegrad as tg
import tapegrad.nn as nn

SEED_SIZES = (2, 25, 25, 25, 2)


# --- the network, as each contender builds it -------------------------------------------------
def tapegrad_model(sizes: tuple[int, ...], fuse: bool = False) -> nn.Sequential:
    """The seed network as tapegrad nn modules (torch's default initialisation); ``fuse``: each Linear and
    its activation as one record (`nn.Sequential`'s opt-in)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b), nn.ReLU() if i < len(sizes) - 2 else nn.Tanh()]
    return nn.Sequential(*layers, fuse=fuse)


def weights_of(model: nn.Sequential) -> list[torch.Tensor]:
    """[w1, b1, w2, b2, ...] as torch tensors (copies)."""
    return [p.data.clone() for p in model.parameters()]


def torch_model(weights: list[torch.Tensor]) -> torch.nn.Sequential:
    """The same network in torch.nn, initialised with ``weights``."""
    layers: list[torch.nn.Module] = []
    n = len(weights) // 2
    for i in range(n):
        w, b = weights[2 * i], weights[2 * i + 1]
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers += [lin, torch.nn.ReLU() if i < n - 1 else torch.nn.Tanh()]
    return torch.nn.Sequential(*layers)


# --- contenders: each returns (epoch function, its parameters as torch tensors) ---------------
def floor_contender(
    weights: list[torch.Tensor], batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float
) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """Raw torch: forward, hand-written backward of MSE/tanh/relu/linear, in-place SGD."""
    params = [w.clone() for w in weights]
    n = len(params) // 2

    def epoch() -> None:
        for x, y in batches:
            acts = [x]
            for i in range(n):
                z = torch.addmm(params[2 * i + 1], acts[-1], params[2 * i].t())
                acts.append(torch.relu(z) if i < n - 1 else torch.tanh(z))
            out = acts[-1]
            d = out - y
            loss = (d * d).mean()  # noqa: F841  (computed, as every contender does)
            g = (d * (2.0 / d.numel())) * (1 - out * out)
            grads: list[Any] = [None] * len(params)  # every slot filled below
            for i in range(n - 1, -1, -1):
                grads[2 * i] = g.t() @ acts[i]
                grads[2 * i + 1] = g.sum(0)
                if i:
                    g = (g @ params[2 * i]) * acts[i].sign()  # relu' as 0/1 floats: the fastest mask
            torch._foreach_add_(params, grads, alpha=-lr)

    return epoch, params


def torch_contender(
    weights: list[torch.Tensor], batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float
) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """PyTorch autograd: torch.nn + torch.optim.SGD + loss.backward()."""
    model = torch_model(weights)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.MSELoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return _epochs(batches, step), [p.data for p in model.parameters()]


def _tapegrad_setup(
    weights: list[torch.Tensor], sizes: tuple[int, ...], lr: float, fuse: bool = False
) -> tuple[nn.Sequential, nn.SGD, nn.MSELoss]:
    model = tapegrad_model(sizes, fuse)
    for p, w in zip(model.parameters(), weights):
        p.data.copy_(w)
    return model, nn.SGD(model.parameters(), lr=lr), nn.MSELoss()


def tapegrad_contender(
    weights: list[torch.Tensor],
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    lr: float,
    sizes: tuple[int, ...] = SEED_SIZES,
) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """tapegrad eager: nn modules (``nn.Sequential(..., fuse=True)``) under a one-shot tape, loss.backward(), nn.SGD."""
    model, opt, loss_fn = _tapegrad_setup(weights, sizes, lr, fuse=True)

    def step(x: tg.Tensor, y: tg.Tensor) -> None:
        with tg.Tape():
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()

    return _epochs(_wrapped(batches), step), [p.data for p in model.parameters()]


def traced_contender(
    weights: list[torch.Tensor],
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    lr: float,
    sizes: tuple[int, ...] = SEED_SIZES,
    executor: str = "auto",
) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """tapegrad traced: the same loss through tg.trace (recorded once, replayed on ``executor``), nn.SGD."""
    model, opt, loss_fn = _tapegrad_setup(weights, sizes, lr)
    traced = tg.trace(lambda x, y: loss_fn(model(x), y), executor=executor)

    def step(x: tg.Tensor, y: tg.Tensor) -> None:
        traced(x, y)
        opt.step()
        opt.zero_grad()

    return _epochs(_wrapped(batches), step), [p.data for p in model.parameters()]


def user_contender(
    weights: list[torch.Tensor], batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float, sizes: tuple[int, ...]
) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """Eager tapegrad as in the README: slice the batch, open a tape, backward, step, zero_grad."""
    model, opt, loss_fn = _tapegrad_setup(weights, sizes, lr)
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
    model, opt, loss_fn = _tapegrad_setup(weights, sizes, lr)
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, **trace_options)
    return _epochs(_wrapped(batches), step), [p.data for p in model.parameters()]


def starting_point(
    sizes: tuple[int, ...], n: int, batch: int, seed: int
) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
    """What every contender of a case starts from: the network's initial weights (torch's default
    initialisation, drawn from ``seed``) and ``n`` samples of the disk data in batches of ``batch``."""
    torch.manual_seed(seed)
    return weights_of(tapegrad_model(sizes)), seed_data(n, batch, seed)


def seed_data(n: int, batch: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The disk data set as (x, +-1 targets) batches of raw torch tensors."""
    x, labels = nn.data.disk_dataset(n, seed=seed)
    y = nn.signed_targets(labels, 2)
    return [(x.data[i : i + batch], y.data[i : i + batch]) for i in range(0, n, batch)]


def _wrapped(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[tg.Tensor, tg.Tensor]]:
    return [(tg.Tensor(x), tg.Tensor(y)) for x, y in batches]


def _epochs(batches: list[Any], step: Callable[[Any, Any], Any]) -> Callable[[], None]:
    """An epoch: ``step(x, y)`` for each batch, in order."""

    def epoch() -> None:
        for x, y in batches:
            step(x, y)

    return epoch
