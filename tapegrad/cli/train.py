"""`tapegrad train`: train the seed network for one or more rounds; curves, boundary, checkpoint."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import torch

import tapegrad.nn as nn
from tapegrad.progress import Progress

from .common import (
    build_loss,
    build_model,
    build_optimizer,
    load_data,
    mean_std,
    progress_enabled,
    round_seed,
    sizes_of,
)

__all__ = ["run", "run_rounds", "train_round", "describe", "config_of", "diverged"]


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of a run, as they go into ``--json`` output."""
    return {
        "sizes": sizes_of(args.hidden),
        "activation": args.activation,
        "loss": args.loss,
        "reduction": args.reduction,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "betas": list(args.betas),
        "eps": args.eps,
        "init": args.init,
        "gain": args.gain,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "rounds": args.rounds,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "nproc": _world_size(getattr(args, "nproc", 1)),
    }


def _world_size(nproc: int) -> int:
    """The processes training together: the process group's size when there is one (torchrun), else ``nproc``."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else nproc


def describe(args: argparse.Namespace) -> str:
    """One line naming the network and the training settings."""
    out = "tanh" if args.loss != "ce" else "logits"
    opt = f"sgd lr={args.lr:g}" + (f" momentum={args.momentum:g}" if args.momentum else "")
    if args.optimizer == "adam":
        opt = f"adam lr={args.lr:g} betas=({args.betas[0]:g}, {args.betas[1]:g}) eps={args.eps:g}"
    loss = args.loss if args.reduction == "mean" else f"{args.loss} ({args.reduction})"
    nproc = _world_size(getattr(args, "nproc", 1))
    batch = f"batch {args.batch_size}" + (f" per process x {nproc} processes" if nproc > 1 else "")
    return (
        f"{'-'.join(map(str, sizes_of(args.hidden)))} {args.activation}/{out}, {loss}, {opt}, "
        f"{batch}, {args.epochs} epochs, {args.init} init (gain {args.gain:g})"
    )


def train_round(
    args: argparse.Namespace, r: int, curves: bool, bar: bool, parallel: bool = False
) -> tuple[dict[str, Any], Any, Any, Any]:
    """Round ``r``: fresh data and weights from its seed, `nn.fit`, test evaluation.

    With ``parallel`` (inside a torch.distributed process group) the model is wrapped in
    `nn.parallel.DistributedDataParallel` and each process trains on its `DistributedSampler`
    shard. Returns (the round's numbers, the model, the data, the history).
    """
    seed = round_seed(args.seed, r)
    data = load_data(args.n_train, args.n_test, seed)
    torch.manual_seed(seed)
    model = build_model(args.hidden, args.activation, args.loss, args.init, args.gain)
    loss_fn = build_loss(args.loss, args.reduction)
    net = nn.parallel.DistributedDataParallel(model) if parallel else model
    sampler = nn.data.DistributedSampler(data.train, seed=seed) if parallel else None
    opt = build_optimizer(args.optimizer, net.parameters(), args.lr, args.momentum, tuple(args.betas), args.eps)
    history = nn.fit(
        net,
        loss_fn,
        opt,
        data.train,
        args.epochs,
        args.batch_size,
        val_data=data.test if curves else None,
        progress=bar,
        seed=seed,
        sampler=sampler,
    )
    test = nn.evaluate(model, data.test, loss_fn)
    train = nn.evaluate(model, data.train, loss_fn)
    numbers = {
        "round": r,
        "seed": seed,
        "train_error_rate": train.error_rate,
        "train_loss": train.loss,
        "test_error_rate": test.error_rate,
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "train_time_s": sum(history.epoch_time),
    }
    return numbers, model, data, history


def run(args: argparse.Namespace) -> int:
    """Train, print a table (or JSON), write the requested plots and checkpoint.

    With ``--nproc N`` (or under torchrun) the rounds run data-parallel in N processes.
    """
    from .train_parallel import launched_by_torchrun, run_parallel

    if getattr(args, "nproc", 1) > 1 or launched_by_torchrun():
        return run_parallel(args)
    return run_rounds(args)


def run_rounds(args: argparse.Namespace, parallel: bool = False) -> int:
    """Train every round; the main process (rank 0 of a parallel run) prints and writes the outputs."""
    from .plots import plot_boundary, plot_curves

    main = nn.parallel.is_main_process()
    show = progress_enabled(args) and main
    rounds: list[dict[str, Any]] = []
    first: tuple[Any, Any, Any] | None = None
    shown = Progress(args.rounds, "rounds", "round", enabled=show and args.rounds > 1)
    for r in range(args.rounds):
        numbers, model, data, history = train_round(args, r, curves=r == 0, bar=show and args.rounds == 1,
                                                    parallel=parallel)  # fmt: skip
        shown.update(f"round {r}: test error rate {numbers['test_error_rate']:.2%}")
        losses = history.loss + [numbers["test_loss"]]
        where = diverged(losses)
        if where is not None:  # every rank of a parallel run diverges alike: rank 0 says so
            epoch = f"epoch {where + 1}" if where < len(history.loss) else "the test evaluation"
            if main:
                print(
                    f"tapegrad train: error: training diverged: the loss became {losses[where]:g} in {epoch} of "
                    f"round {r} (try a smaller --lr)",
                    file=sys.stderr,
                )
            shown.close()
            return 1
        rounds.append(numbers)
        if r == 0:
            first = (model, data, history)
    shown.close()
    if not main:
        return 0
    assert first is not None  # --rounds is at least 1
    model, data, history = first
    summary = {
        key: mean_std([n[key] for n in rounds])
        for key in ("test_error_rate", "test_accuracy", "train_error_rate", "train_time_s")
    }
    written = []
    if args.plot:
        plot_curves(history, args.plot, title=describe(args))
        written.append(args.plot)
    if args.boundary:
        plot_boundary(
            model,
            data.raw_train_x,
            data.raw_test_x,
            data.test[1],
            args.boundary,
            title=f"decision regions, test error {100 * rounds[0]['test_error_rate']:.2f}%",
        )
        written.append(args.boundary)
    if args.save:
        nn.save(model, args.save)
        written.append(args.save)
    if args.json:
        out = {
            "command": "train",
            "config": config_of(args),
            "rounds": rounds,
            "summary": summary,
            "history": history.as_dict(),
            "outputs": written,
        }
        print(json.dumps(out, indent=2))
        return 0
    if args.quiet:
        print(_summary_line(summary, len(rounds)))
        return 0
    print(f"tapegrad train: {describe(args)}")
    print(f"{'round':>5} {'seed':>6} {'train err':>10} {'test err':>9} {'test loss':>10} {'time (s)':>9}")
    for n in rounds:
        print(
            f"{n['round']:5d} {n['seed']:6d} {100 * n['train_error_rate']:9.2f}% {100 * n['test_error_rate']:8.2f}%"
            f" {n['test_loss']:10.4f} {n['train_time_s']:9.2f}"
        )
    print(_summary_line(summary, len(rounds)))
    for path in written:
        print(f"wrote {path}")
    return 0


def diverged(losses: list[float]) -> int | None:
    """The index of the first loss that is NaN or infinite, or None."""
    return next((i for i, loss in enumerate(losses) if not math.isfinite(loss)), None)


def _summary_line(summary: dict[str, dict[str, float]], n: int) -> str:
    err, t = summary["test_error_rate"], summary["train_time_s"]
    return (
        f"test error rate {100 * err['mean']:.2f}% (std {err['std']:.2e}) over {n} round{'s' * (n > 1)}; "
        f"training time {t['mean']:.2f} s (std {t['std']:.2e})"
    )
