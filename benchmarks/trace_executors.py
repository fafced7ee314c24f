"""tg.trace's executors on the seed network (2-25-25-2, tanh, MSE, SGD, batch 10) against torch autograd.

Prints, per executor, the CPU time of a whole training step (forward, backward, SGD step) as a
ratio to torch autograd's (torch.nn + torch.optim), interleaved round by round (median over
rounds); the time of the call that compiles (inductor: with its on-disk cache as it is); and the
cost of ``Traced.__call__`` over calling the compiled graph directly.

    python benchmarks/trace_executors.py [--rounds 15] [--steps 300] [--width 25] [--batch 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import nn
import tapegrad as tg


def tapegrad_step(executor: str, width: int, batch: int) -> tuple[Callable[[], object], tuple, Callable[[], object]]:
    """A traced step with SGD folded in; (CPU, wall) seconds of its compiling call; its graph called directly."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 2))
    loss_fn, opt = nn.MSELoss(), nn.SGD(model.parameters(), lr=0.01)
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, executor=executor)
    x, y = tg.Tensor(torch.rand(batch, 2)), tg.Tensor(torch.rand(batch, 2))
    step(x, y), step(x, y)  # traced, checked
    start, wall = time.process_time(), time.perf_counter()
    step(x, y)  # the executor is made (compiled) here
    compile_s = (time.process_time() - start, time.perf_counter() - wall)
    step(x, y)
    (entry,) = step._entries.values()
    fast, inputs = entry.fast, [x.data, y.data] + [p.data for p in entry.plan.captured]
    if executor == "python":  # the graph module's code: forward and backward, without the SGD step
        return (lambda: step(x, y)), compile_s, (lambda: entry.plan.forward(*inputs))
    assert fast.fold and fast.checked, "SGD is folded into the compiled graph"
    return (lambda: step(x, y)), compile_s, (lambda: fast.compiled(*inputs))


def torch_step(width: int, batch: int) -> Callable[[], object]:
    """torch autograd's step: forward, backward, SGD, zero_grad."""
    torch.manual_seed(0)
    tnn = torch.nn
    model = tnn.Sequential(tnn.Linear(2, width), tnn.Tanh(), tnn.Linear(width, width), tnn.Tanh(), tnn.Linear(width, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = tnn.MSELoss()
    x, y = torch.rand(batch, 2), torch.rand(batch, 2)

    def step() -> None:
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()

    return step


def per_step(fn: Callable[[], object], steps: int) -> float:
    start = time.process_time()
    for _ in range(steps):
        fn()
    return (time.process_time() - start) / steps


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--width", type=int, default=25)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--executors", default="python,torchscript,inductor")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.executors.split(",")
    made = {name: tapegrad_step(name, args.width, args.batch) for name in names}
    contenders = {"torch": torch_step(args.width, args.batch)} | {n: m[0] for n, m in made.items()}
    contenders |= {f"{n} (graph directly)": m[2] for n, m in made.items()}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            times[name].append(per_step(fn, args.steps))
    print(f"seed network width {args.width}, batch {args.batch}: {args.rounds} interleaved rounds, {args.steps} steps")
    print(f"  {'contender':28} {'us/step':>9} {'/ torch':>8}")
    for name, ts in times.items():
        ratio = statistics.median(t / base for t, base in zip(ts, times["torch"]))
        print(f"  {name:28} {statistics.median(ts) * 1e6:9.1f} {ratio:8.3f}")
    for name in names:
        over = statistics.median(a - b for a, b in zip(times[name], times[f"{name} (graph directly)"]))
        print(f"  {name}: Traced.__call__ over the graph called directly: {over * 1e6:.1f} us")
        cpu, wall = made[name][1]
        print(f"  {name}: the compiling call took {wall:.2f} s ({cpu:.2f} s of CPU in this process)")


if __name__ == "__main__":
    main()
