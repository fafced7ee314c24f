"""The seed network trained from a user's own script (not through `tapegrad bench`): the launch the
issue-22 goal names besides `tapegrad bench` and `python -m tapegrad bench`.

2-25-25-25-2 (ReLU hidden, Tanh out), MSE on +-1 targets, SGD, batch 10, 1000 samples an epoch,
float32, one torch thread. tapegrad and torch train copies of the same weights on the same batches,
one epoch each per round, interleaved; the ratios are of median CPU seconds (`time.process_time`)
an epoch. ``fused`` is `nn.Sequential(..., fuse=True)`, ``plain`` the same layers unfused (as the
README writes a model).

    python benchmarks/seed_script.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a source checkout without an install

import torch  # noqa: E402

import nn  # noqa: E402
import tapegrad as tg  # noqa: E402

SIZES = (2, 25, 25, 25, 2)


Batches = list[tuple[torch.Tensor, torch.Tensor]]


def tapegrad_epoch(weights: list[torch.Tensor], batches: Batches, fuse: bool) -> Callable[[], None]:
    """One epoch of tapegrad: a tape per step, `tape.backward`, `nn.SGD`."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(SIZES, SIZES[1:])):
        layers += [nn.Linear(a, b), nn.ReLU() if i < len(SIZES) - 2 else nn.Tanh()]
    model = nn.Sequential(*layers, fuse=fuse)
    for p, w in zip(model.parameters(), weights):
        p.data.copy_(w)
    opt = nn.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.MSELoss()
    data = [(tg.Tensor(x), tg.Tensor(y)) for x, y in batches]

    def epoch() -> None:
        for x, y in data:
            with tg.Tape() as tape:
                loss = loss_fn(model(x), y)
            tape.backward(loss)
            opt.step()
            opt.zero_grad()

    return epoch


def torch_epoch(weights: list[torch.Tensor], batches: Batches) -> Callable[[], None]:
    """One epoch of torch: torch.nn, `loss.backward()`, torch.optim.SGD."""
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(SIZES, SIZES[1:])):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU() if i < len(SIZES) - 2 else torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights):
            p.copy_(w)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = torch.nn.MSELoss()

    def epoch() -> None:
        for x, y in batches:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()

    return epoch


def main() -> None:
    """Train the contenders interleaved and print the median CPU time an epoch and the ratio to torch."""
    parser = argparse.ArgumentParser(description="the seed network from a user's script")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reference = torch.nn.Sequential(*[torch.nn.Linear(a, b) for a, b in zip(SIZES, SIZES[1:])])
    weights = [p.detach().clone() for p in reference.parameters()]
    x, labels = nn.data.disk_dataset(1000, seed=0)
    y = nn.signed_targets(labels, 2)
    batches = [(x.data[i : i + 10], y.data[i : i + 10]) for i in range(0, 1000, 10)]
    epochs = {
        "torch": torch_epoch(weights, batches),
        "fused": tapegrad_epoch(weights, batches, True),
        "plain": tapegrad_epoch(weights, batches, False),
    }
    times: dict[str, list[float]] = {name: [] for name in epochs}
    names = list(epochs)
    for epoch in epochs.values():
        epoch()  # warm-up
    for r in range(args.rounds):
        for name in names[r % 3 :] + names[: r % 3]:
            gc.collect()
            t0 = time.process_time()
            epochs[name]()
            times[name].append(time.process_time() - t0)
    median = {name: statistics.median(t) for name, t in times.items()}
    for name in names:
        print(f"{name:6s} {median[name] * 1e3:7.2f} ms/epoch  x torch {median[name] / median['torch']:.3f}")


if __name__ == "__main__":
    main()
