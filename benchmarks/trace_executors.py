"""tg.trace's executors against torch autograd and JAX's jit on the seed network; the cost of a traced call.

1. The seed network of ``tapegrad bench`` (2-25-25-25-2, ReLU then Tanh, MSE, SGD lr 0.05, batch
   10, 100 batches an epoch, one thread), every contender from the same weights on the same
   batches: torch (torch.nn + torch.optim), ``tg.trace(..., optimizer=opt)`` per executor (SGD
   folded in), each compiled graph called directly, and JAX's jitted step (``jax.jit`` of
   value_and_grad + the update) when jax is installed (``pip install tapegrad[bench]``; else its
   row is skipped, with the reason). CPU time of an epoch, rounds interleaved, median of the
   per-round ratios to torch. (``"python"`` and ``"auto"`` run the Python graph here: no "graph directly"
   row, no item 3.)
2. The compiling call of each executor (wall and CPU time of this process), with inductor's cache
   counters: a hit means the step was found in the on-disk caches (``TORCHINDUCTOR_CACHE_DIR``),
   so a second process with the same step compiles warm. JAX: its first epoch (the jit compile).
3. ``Traced.__call__`` over calling its compiled graph directly, on the seed step (wall time of
   rounds of 100 calls, interleaved), and the call path alone (the graph replaced by a function that
   returns its outputs).

    python benchmarks/trace_executors.py [--rounds 15] [--executors python,inductor] [--call-rounds 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import nn
import tapegrad as tg
from tapegrad.cli.bench import jax_step
from tapegrad.cli.bench.contenders import (
    SEED_SIZES,
    seed_data,
    tapegrad_model,
    torch_contender,
    traced_opt_contender,
    weights_of,
)

LR = 0.05


def cpu_seconds(fn: Callable[[], object]) -> tuple[float, float]:
    """(CPU, wall) seconds of one call of ``fn``."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def compiled_of(step: Any) -> Callable[..., Any]:
    """The compiled function of a traced step with SGD folded in (raises if it is not that)."""
    (entry,) = step._entries.values()
    assert entry.fold and entry.checked, "SGD is folded into the compiled graph"
    return entry.compiled  # type: ignore[no-any-return]


def inductor_counters() -> dict[str, int]:
    """inductor's and AOTAutograd's cache counters so far (hit, miss, bypass)."""
    from torch._dynamo.utils import counters

    found = {**counters["inductor"], **counters["aot_autograd"]}
    return {k: v for k, v in found.items() if "cache" in k}


def seed_contenders(executors: list[str]) -> tuple[dict[str, Callable[[], None]], list[str]]:
    """The epoch of each contender, and lines about their compiling calls."""
    torch.manual_seed(0)
    weights = weights_of(tapegrad_model(SEED_SIZES))
    batches = seed_data(1000, 10, 0)
    epochs: dict[str, Callable[[], None]] = {"torch": torch_contender(weights, batches, LR)[0]}
    notes = []
    for name in executors:
        epoch, _ = traced_opt_contender(weights, batches, LR, SEED_SIZES, executor=name)
        before = inductor_counters()
        cpu, wall = cpu_seconds(epoch)  # its first steps trace, check, compile and check the compiled graph
        cache = {k: v - before.get(k, 0) for k, v in inductor_counters().items() if v != before.get(k, 0)}
        notes.append(f"{name}: the first epoch (trace, compile, 100 steps) took {wall:.2f} s ({cpu:.2f} s CPU) {cache}")
        epochs[name] = epoch
        if name == "inductor":  # (python, and "auto" in a run this short, run the Python graph: nothing compiled)
            epochs[f"{name} (graph directly)"] = _direct_epoch(weights, batches, name)
    if not jax_step.available():
        notes.append("jax: skipped, jax is not installed (pip install tapegrad[bench])")
    else:
        epoch, _ = jax_step.jax_contender(weights, batches, LR)
        cpu, wall = cpu_seconds(epoch)
        notes.append(f"jax: the first epoch (jit compile, 100 steps) took {wall:.2f} s ({cpu:.2f} s CPU)")
        epochs["jax"] = epoch
    return epochs, notes


def _direct_epoch(weights: list[torch.Tensor], batches: list, executor: str) -> Callable[[], None]:
    """An epoch calling the compiled graph (SGD folded) directly on the batches' data."""
    model = tapegrad_model(SEED_SIZES)
    for p, w in zip(model.parameters(), weights):
        p.data = w.clone()
    loss_fn, opt = nn.MSELoss(), nn.SGD(model.parameters(), lr=LR)
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, executor=executor)
    for x, y in batches[:4]:
        step(tg.Tensor(x), tg.Tensor(y))
    compiled, datas = compiled_of(step), [p.data for p in model.parameters()]

    def epoch() -> None:
        for x, y in batches:
            compiled(x, y, *datas)

    return epoch


def interleaved(epochs: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """CPU seconds of each contender's epoch, round by round, in a rotating order."""
    times: dict[str, list[float]] = {name: [] for name in epochs}
    names = list(epochs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(cpu_seconds(epochs[name])[0])
    return times


def overhead(executor: str, rounds: int) -> list[str]:
    """``Traced.__call__`` against calling its compiled graph directly on the seed step (SGD folded), in
    microseconds per call: rounds of 100 calls each way, interleaved, the least rounds, the medians and the
    median of the per-round differences compared (pairs cancel most of a shared machine's load); then the call
    path alone (the graph replaced by a function that returns its outputs) against that function called directly."""
    torch.manual_seed(0)
    model, loss_fn = tapegrad_model(SEED_SIZES), nn.MSELoss()
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=nn.SGD(model.parameters(), lr=LR), executor=executor)
    batches = [(tg.Tensor(x), tg.Tensor(y)) for x, y in seed_data(1000, 10, 0)]
    for x, y in batches[:8]:
        step(x, y)
    (entry,) = step._entries.values()
    compiled, datas = compiled_of(step), [p.data for p in model.parameters()]
    raw = [(x.data, y.data) for x, y in batches]
    outputs = compiled(*raw[0], *datas)

    def stub(*inputs: torch.Tensor) -> Any:
        return outputs

    def per_call(graph: Callable[..., Any]) -> dict[str, float]:
        entry.compiled = graph
        entry.arm(batches[0])
        took: dict[str, list[float]] = {"traced": [], "direct": []}
        for _ in range(rounds):
            start = time.perf_counter()
            for x, y in batches:
                step(x, y)
            took["traced"].append((time.perf_counter() - start) * 1e4)  # us per call: 100 calls
            start = time.perf_counter()
            for a, b in raw:
                graph(a, b, *datas)
            took["direct"].append((time.perf_counter() - start) * 1e4)
        t, d = took["traced"], took["direct"]  # (the least time of a round: the one the machine's load spared)
        paired = statistics.median(a - b for a, b in zip(t, d))  # each round against the direct round after it
        return {"min": min(t) - min(d), "median": statistics.median(t) - statistics.median(d), "traced": min(t),
                "paired": paired}  # fmt: skip

    real, stubbed = per_call(compiled), per_call(stub)
    entry.compiled = compiled
    entry.arm(batches[0])
    return [
        f"{executor}: Traced.__call__ over the graph called directly, seed step: {real['min']:.2f} us (of the "
        f"least times; of the medians {real['median']:.2f}; median of the per-round differences "
        f"{real['paired']:.2f}); traced {real['traced']:.2f} us a call (least)",
        f"{executor}: the call path alone (graph stubbed): {stubbed['min']:.2f} us (medians {stubbed['median']:.2f};"
        f" median of the per-round differences {stubbed['paired']:.2f})",
    ]


def main() -> None:
    """Run the comparison and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--executors", default="python,inductor")
    parser.add_argument("--call-rounds", type=int, default=200, help="rounds of 100 calls of the call-path measurement")
    parser.add_argument("--overhead-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.executors.split(",")
    if not args.overhead_only:
        epochs, notes = seed_contenders(names)
        times = interleaved(epochs, args.rounds)
        print(f"seed network {'-'.join(map(str, SEED_SIZES))}, batch 10, 100 steps an epoch: {args.rounds} rounds")
        print(f"  {'contender':28} {'ms/epoch':>9} {'/ torch':>8}  (CPU time, median)")
        for name, ts in times.items():
            ratio = statistics.median(t / base for t, base in zip(ts, times["torch"]))
            print(f"  {name:28} {statistics.median(ts) * 1e3:9.2f} {ratio:8.3f}")
        for note in notes:
            print(f"  {note}")
    for name in names:
        for line in overhead(name, args.call_rounds) if name == "inductor" else []:
            print(f"  {line}")


if __name__ == "__main__":
    main()
