"""Benchmark: char-level language models, tapegrad eager and traced against torch eager (torch.nn).

`tapegrad bench --only models`. Five models (`models_tapegrad`, `models_torch`): an MLP, a GRU, an
LSTM (the GRU's shape) and a small transformer (embedding 32, context 16, batch 32) and a larger transformer (4 layers,
embedding 128, context 64, batch 32), trained with AdamW in float32 from the same weights on the
same batches. The contenders run interleaved (each round in a rotating order, ``steps`` steps
each); the table shows median CPU time (process time: robust on a shared machine) and wall time
per step as ratios to torch, the heap growth of a step (glibc's bytes in use after the forward
pass, its peak, minus before), the bytes kept for backward (distinct storages a record holds on
the tape; torch's side through ``saved_tensors_hooks``), aten ops per step, and how far the
losses drift from torch's.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import tapegrad as tg
import tapegrad.nn as nn

from ...tracing.executors import inductor_works
from . import models_tapegrad as ours
from . import models_torch as theirs
from .models_memory import measure_step, tape_bytes

__all__ = ["MODELS", "batches", "build", "model_benchmark", "models_benchmark", "tape_bytes"]

TEXT = (
    "it was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of light, "
    "it was the season of darkness, it was the spring of hope, it was the winter of despair, we had "
    "everything before us, we had nothing before us, we were all going direct to heaven, we were all "
    "going direct the other way. "
)
CHARS = sorted(set(TEXT))
# name: (tapegrad class, torch class, constructor kwargs, context, per-position targets)
MODELS: dict[str, tuple[Any, Any, dict[str, int], int, bool]] = {
    "mlp": (ours.MLP, theirs.MLP, {}, 16, False),
    "gru": (ours.GRULM, theirs.GRULM, {}, 16, True),
    "lstm": (ours.LSTMLM, theirs.LSTMLM, {}, 16, True),
    "transformer": (ours.Transformer, theirs.Transformer, {}, 16, True),
    "transformer-large": (ours.Transformer, theirs.Transformer, {"emb": 128, "layers": 4}, 64, True),
}
BATCH = 32


def batches(context: int, per_position: bool, n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of (B, context) indices and their targets: the next character (of each position)."""
    data = torch.tensor([CHARS.index(c) for c in TEXT * 4])
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        at = torch.randint(0, len(data) - context - 1, (BATCH,), generator=gen)
        x = torch.stack([data[i : i + context] for i in at.tolist()])
        y = torch.stack([data[i + 1 : i + context + 1] for i in at.tolist()])
        out.append((x, y.reshape(-1) if per_position else y[:, -1]))
    return out


class _Eager:
    """One contender that runs forward, backward and the AdamW step as separate phases."""

    def __init__(self, forward: Callable[[torch.Tensor, torch.Tensor], Any], backward: Callable, update: Callable):
        self.forward, self.backward, self.update = forward, backward, update

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        state = self.forward(x, y)
        loss = self.backward(state)
        self.update()
        return loss


def tapegrad_contender(model: nn.Module) -> _Eager:
    """tapegrad eager: a one-shot tape, nn.CrossEntropyLoss, loss.backward(), nn.AdamW."""
    opt = nn.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def forward(x: torch.Tensor, y: torch.Tensor) -> Any:
        with tg.Tape() as tape:
            loss = loss_fn(model(tg.Tensor(x)), y)
        return tape, loss

    def backward(state: Any) -> float:
        tape, loss = state
        tape.backward(loss)
        return float(loss.data)

    def update() -> None:
        opt.step()
        opt.zero_grad()

    return _Eager(forward, backward, update)


def torch_contender(model: torch.nn.Module) -> _Eager:
    """torch eager: torch.nn modules, F.cross_entropy, loss.backward(), torch.optim.AdamW."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)

    def forward(x: torch.Tensor, y: torch.Tensor) -> Any:
        return torch.nn.functional.cross_entropy(model(x), y)

    def backward(loss: Any) -> float:
        loss.backward()
        return float(loss.detach())

    def update() -> None:
        opt.step()
        opt.zero_grad(set_to_none=True)

    return _Eager(forward, backward, update)


def traced_contender(model: nn.Module, executor: str = "auto") -> Callable[[torch.Tensor, torch.Tensor], float]:
    """tapegrad traced: tg.trace of the whole step with its AdamW optimizer (folded into the compiled
    forward and backward), on ``executor``."""
    opt = nn.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    step = tg.trace(lambda x, y: loss_fn(model(x), y), optimizer=opt, executor=executor)
    return lambda x, y: float(step(tg.Tensor(x), y).data)


# Untimed steps of every contender before the timed rounds: a traced step's first four calls trace it,
# check the trace, compile it and check the compiled replay (a folded try that fails its check: two more
# for the unfolded one); the rounds time only the replays that follow.
WARM_STEPS = 6
Series = dict[str, list[float]]  # per contender


def build(name: str) -> tuple[nn.Module, nn.Module, torch.nn.Module]:
    """Two tapegrad copies (eager, traced) and the torch twin of model ``name``, with equal weights."""
    ours_cls, theirs_cls, kwargs, context, _ = MODELS[name]
    torch.manual_seed(0)
    args = (len(CHARS),) if ours_cls in (ours.GRULM, ours.LSTMLM) else (len(CHARS), context)  # no context arg
    a, b, t = ours_cls(*args, **kwargs), ours_cls(*args, **kwargs), theirs_cls(*args, **kwargs)
    weights = dict(a.named_parameters())
    b.load_state_dict({k: p.data.clone() for k, p in weights.items()})
    with torch.no_grad():
        for k, p in t.named_parameters():
            p.copy_(weights[k].data)
    return a, b, t


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def model_benchmark(name: str, rounds: int, steps: int, traced: bool = True, executor: str = "auto") -> dict[str, Any]:
    """Interleaved training steps of model ``name``: per-step medians, ratios, memory and op counts."""
    _, _, _, context, per_position = MODELS[name]
    eager_model, traced_model, torch_model = build(name)
    contenders: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
        "torch": torch_contender(torch_model).step,
        "tapegrad": tapegrad_contender(eager_model).step,
    }
    skipped = ""
    if traced:
        try:
            contenders["traced"] = traced_contender(traced_model, executor)
        except Exception as err:  # the table says why; the eager figures still count
            skipped = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
    cpu, wall, losses, failed = _interleaved(contenders, batches(context, per_position, 8), rounds, steps)
    n = min(len(v) for v in losses.values())
    drift = {k: max(abs(a - b) for a, b in zip(v[:n], losses["torch"][:n])) for k, v in losses.items() if k != "torch"}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    x, y = batches(context, per_position, 1)[0]
    memory = {
        "torch": measure_step(torch_contender(build(name)[2]), x, y, True),
        "tapegrad": measure_step(tapegrad_contender(build(name)[0]), x, y, False),
    }
    return {
        "model": name,
        "steps": rounds * steps,
        "cpu_ms": {k: v * 1e3 for k, v in med_cpu.items()},
        "wall_ms": {k: v * 1e3 for k, v in med_wall.items()},
        "cpu_ratio": {k: v / med_cpu["torch"] for k, v in med_cpu.items() if k != "torch"},
        "wall_ratio": {k: v / med_wall["torch"] for k, v in med_wall.items() if k != "torch"},
        "loss_drift": drift,
        "memory": memory,
        "traced_skipped": failed or skipped,
        "executor": executor,
    }


def _interleaved(
    contenders: dict[str, Callable[[torch.Tensor, torch.Tensor], float]], data: list, rounds: int, steps: int
) -> tuple[Series, Series, Series, str]:
    """``WARM_STEPS`` untimed steps of each contender, then ``rounds`` rounds of ``steps`` steps, each round
    in a rotating order; returns per-step (CPU, wall) seconds and the losses per contender, and why the
    traced contender failed ("" if it did not: it leaves the table, the others still count)."""
    losses: Series = {k: [] for k in contenders}
    cpu: Series = {k: [] for k in contenders}
    wall: Series = {k: [] for k in contenders}
    failed = ""

    def run(k: str, n: int) -> Callable[[], None]:
        def go() -> None:
            for _ in range(n):
                x, y = data[len(losses[k]) % len(data)]
                losses[k].append(contenders[k](x, y))

        return go

    names = list(contenders)
    for r in range(rounds + 1):  # round 0 warms up (and traces, checks, compiles)
        for k in names[r % len(names) :] + names[: r % len(names)]:
            try:
                c, w = _timed(run(k, steps if r else WARM_STEPS))
            except Exception as err:
                if k != "traced":
                    raise
                failed = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
                for table in (losses, cpu, wall):
                    del table[k]
                names.remove(k)
                continue
            if r:
                cpu[k].append(c / steps)
                wall[k].append(w / steps)
    return cpu, wall, losses, failed


def models_benchmark(
    rounds: int = 3, steps: int = 4, names: list[str] | None = None, executor: str | None = None
) -> list[dict[str, Any]]:
    """`model_benchmark` for each model (all by default); the traced rows on ``executor`` (None: inductor where
    it can compile here, the step's speed after its compile, whatever ``"auto"`` would pick; else ``"auto"``)."""
    chosen = executor or ("inductor" if inductor_works() else "auto")
    return [model_benchmark(n, rounds, steps, executor=chosen) for n in (names or list(MODELS))]
